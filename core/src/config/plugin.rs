//! `plugins` of a task file.

use serde::{Deserialize, Serialize};

/// A plugin named in a task file: its `.wasm` and the config handed to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PluginSpec {
    pub path: std::path::PathBuf,
    /// Per call, the longest a plugin may run (ms), 1 to 60 000: the stream waits for it.
    #[serde(default = "default_timeout_ms", deserialize_with = "timeout_ms")]
    pub timeout_ms: u64,
    /// The most memory one instance may have (MiB), 1 to 4096 (all a wasm32 module can use).
    #[serde(default = "default_memory_mib", deserialize_with = "memory_mib")]
    pub memory_mib: u64,
    /// Handed to the plugin when it starts (as JSON text); it may refuse it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// Set by the master: the module's bytes are in the metadata store under this hash, so
    /// workers need no shared disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

fn timeout_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_u64(super::Bounded(1, 60_000, "a timeout of 1 to 60000 ms"))
}

fn memory_mib<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_u64(super::Bounded(1, 4096, "1 to 4096 MiB"))
}

fn default_timeout_ms() -> u64 {
    1000
}
fn default_memory_mib() -> u64 {
    256
}

#[cfg(test)]
mod tests {
    use super::PluginSpec;

    #[test]
    fn timeout_and_memory_out_of_range_are_refused_at_their_line() {
        let parse = |extra: &str| {
            crate::config::parse_yaml::<PluginSpec>("task.yaml", &format!("path: p.wasm\n{extra}"))
        };
        assert_eq!(parse("timeout-ms: 500\n").unwrap().timeout_ms, 500);
        for bad in [
            "timeout-ms: 0",
            "timeout-ms: 86400000",
            "timeout-ms: -1",
            "memory-mib: 0",
            "memory-mib: 100000",
        ] {
            let e = parse(&format!("{bad}\n")).unwrap_err().to_string();
            assert!(e.starts_with("task.yaml:2:"), "{bad}: {e}");
        }
    }
}
