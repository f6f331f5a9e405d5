//! `plugins` of a task file.

use serde::{Deserialize, Serialize};

/// A plugin named in a task file: its `.wasm` and the config handed to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PluginSpec {
    pub path: std::path::PathBuf,
    /// Per call, the longest a plugin may run (ms).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The most memory one instance may have (MiB).
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u64,
    /// Handed to the plugin when it starts (as JSON text); it may refuse it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// Set by the master: the module's bytes are in the metadata store under this hash, so
    /// workers need no shared disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

fn default_timeout_ms() -> u64 {
    1000
}
fn default_memory_mib() -> u64 {
    256
}
