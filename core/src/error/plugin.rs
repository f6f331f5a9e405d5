//! How a plugin failed, as the WASM host reports it to the engine.

/// How a plugin failed. Each kind has its own fix, which `hint` gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The module cannot be found, read or run as a dm plugin: not WASM, another ABI, a
    /// missing export, an import, a refused config.
    #[error("{0}")]
    Unusable(String),
    /// It ran past its deadline and was stopped.
    #[error("ran longer than its deadline of {ms} ms and was stopped")]
    Timeout { ms: u64 },
    /// It asked for more memory than it may have.
    #[error("ran out of memory: it may use at most {mib} MiB ({detail})")]
    OutOfMemory { mib: u64, detail: String },
    /// It trapped: a panic, an out-of-bounds access, a division by zero.
    #[error("trapped: {0}")]
    Trapped(String),
    /// Its answer breaks the plugin ABI: not what the hook answers, a verdict missing, a
    /// column the table lacks, a value that is not what its type says.
    #[error("{0}")]
    BadAnswer(String),
}

impl PluginError {
    /// What a user does about it.
    pub fn hint(&self) -> String {
        let resume = "then `dm ctl resume-task <task>`";
        match self {
            PluginError::Unusable(_) => format!("build the plugin against this dm's dm-plugin-sdk (`dm ctl plugin check <file.wasm>` says what is wrong), replace its .wasm file, {resume}"),
            PluginError::Timeout { .. } => format!("if the plugin is just slow, raise `timeout-ms` in the task's plugins section (`dm ctl update-task`); else fix it and replace its .wasm file; {resume}"),
            PluginError::OutOfMemory { .. } => format!("raise `memory-mib` in the task's plugins section (`dm ctl update-task`) or make the plugin use less; {resume}"),
            PluginError::Trapped(_) | PluginError::BadAnswer(_) => format!("fix the plugin (`dm ctl plugin check <file.wasm>` runs it on a sample row) and replace its .wasm file, {resume}"),
        }
    }
}
