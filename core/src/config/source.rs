//! `source.yaml`: one upstream MySQL or MariaDB server.

use super::{parse_yaml, semantic_error, DbConfig};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SourceConfig {
    pub source_id: String,
    /// Resume the binlog stream by GTID (survives a source failover) rather than file:pos.
    #[serde(default)]
    pub enable_gtid: bool,
    /// `mysql` or `mariadb`; detected from the server's version when left out.
    #[serde(default)]
    pub flavor: Option<Flavor>,
    /// Server id dm uses when it reads the binlog; must differ from every server's id.
    #[serde(default)]
    pub server_id: Option<u32>,
    /// The server; left out for a `binlog-dir` source.
    #[serde(default)]
    pub from: DbConfig,
    /// Binlog files on disk as the source (archived from a server that may be gone): an
    /// incremental task replays them into the target, in file order, then waits for more.
    #[serde(default)]
    pub binlog_dir: Option<PathBuf>,
    /// Keep the source's binlog on the worker's disk (relay log); subtasks read it from there,
    /// so they go on while the source is down and the source may purge its binlog early.
    #[serde(default)]
    pub enable_relay: bool,
    /// Where the relay log goes; a relative path is under the worker's data dir. Each source
    /// gets a directory `<relay-dir>/<source-id>`.
    #[serde(default = "default_relay_dir")]
    pub relay_dir: PathBuf,
    /// First binlog file to relay when the relay log is empty; by default the file of the
    /// first position a subtask asks for.
    #[serde(default)]
    pub relay_binlog_name: Option<String>,
    #[serde(default)]
    pub purge: PurgeConfig,
    /// TiDB DM's source-level binlog event filters: added to every task on this source, for
    /// table patterns the task has no rule for.
    #[serde(default)]
    pub filters: Vec<super::FilterRule>,
}

/// When relay log files no subtask needs any more are removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PurgeConfig {
    /// Seconds between two automatic purges.
    #[serde(default = "default_purge_interval")]
    pub interval: u64,
    /// Hours after which a file is removed; 0 keeps files regardless of age.
    #[serde(default)]
    pub expires: u64,
    /// GiB of free disk below which the oldest files are removed.
    #[serde(default = "default_remain_space")]
    pub remain_space: u64,
}

impl Default for PurgeConfig {
    fn default() -> Self {
        PurgeConfig {
            interval: default_purge_interval(),
            expires: 0,
            remain_space: default_remain_space(),
        }
    }
}

fn default_relay_dir() -> PathBuf {
    PathBuf::from("relay-log")
}
fn default_purge_interval() -> u64 {
    3600
}
fn default_remain_space() -> u64 {
    15
}

pub use crate::position::Flavor;

impl SourceConfig {
    /// What dm did with TiDB DM's fields of the file (renamed, left out, and why).
    pub fn compat_warnings(file: &str, text: &str) -> Vec<String> {
        let compat = super::compat::source(file, text);
        let mut warnings = compat.warnings;
        if let Ok(cfg) = parse_yaml::<SourceConfig>(file, &compat.text) {
            warnings.extend(
                cfg.from
                    .session
                    .keys()
                    .filter(|k| super::is_dm_controlled(k))
                    .map(|k| format!("{file}: from.session.{k}: left out: dm sets it itself in every session (UTC, a strict sql_mode, utf8mb4, foreign key checks off)")),
            );
            warnings.extend(cfg.filters.iter().enumerate().filter_map(|(i, r)| {
                let ev = r.unknown_event()?;
                Some(super::FilterRule::left_out(
                    &format!("{file}: filters[{i}]"),
                    ev,
                ))
            }));
        }
        warnings
    }

    pub fn parse(file: &str, text: &str) -> Result<Self> {
        let compat = super::compat::source(file, text);
        let text = compat.text.as_str();
        let mut cfg: SourceConfig = parse_yaml(file, text)?;
        // TiDB DM's files write `relay-binlog-name: ''` for "not set".
        if cfg.relay_binlog_name.as_deref() == Some("") {
            cfg.relay_binlog_name = None;
        }
        super::check_password(file, text, "from.password", &cfg.from.password)?;
        super::check_connection(file, text, "from", &cfg.from)?;
        // As TiDB DM: a rule naming an event DM does not know is left out (compat_warnings).
        cfg.filters.retain(|r| r.unknown_event().is_none());
        for (i, rule) in cfg.filters.iter().enumerate() {
            if let Err((key, message, hint)) = rule.check(&format!("filters[{i}]")) {
                return Err(semantic_error(file, text, key, message, &hint));
            }
        }
        if cfg.source_id.trim().is_empty() {
            return Err(semantic_error(
                file,
                text,
                "source-id",
                "source-id: must not be empty".into(),
                "name the source, e.g. `source-id: mysql-01`",
            ));
        }
        if !super::is_safe_name(&cfg.source_id) {
            return Err(semantic_error(
                file,
                text,
                "source-id",
                format!("source-id: `{}` may only hold letters, digits, `_`, `-` and `.` (at most 64; it names directories and keys)", cfg.source_id),
                "e.g. `source-id: mysql-01`",
            ));
        }
        if let Some(name) = &cfg.relay_binlog_name {
            if !crate::position::is_binlog_name(name) {
                return Err(semantic_error(
                    file,
                    text,
                    "relay-binlog-name",
                    format!("relay-binlog-name: `{name}` is not a binlog file name"),
                    "give a file name of the source's binlog such as `mysql-bin.000001`, or leave the field out",
                ));
            }
        }
        if let Some(dir) = &cfg.binlog_dir {
            let fail = |key: &str, message: String, hint: &str| {
                Err(semantic_error(file, text, key, message, hint))
            };
            if !cfg.from.host.trim().is_empty() {
                return fail(
                    "binlog-dir",
                    "binlog-dir: a source is a server (`from`) or binlog files, not both".into(),
                    "leave `from` out to replay the files, or `binlog-dir` out to read the server",
                );
            }
            if cfg.flavor.is_none() {
                return fail(
                    "binlog-dir",
                    format!(
                        "binlog-dir {}: `flavor` is needed (no server to ask)",
                        dir.display()
                    ),
                    "add `flavor: mysql` or `flavor: mariadb`, as the server that wrote the files",
                );
            }
            if cfg.enable_relay {
                return fail(
                    "enable-relay",
                    "enable-relay: a binlog-dir source is read from its files; there is nothing to relay".into(),
                    "leave enable-relay out",
                );
            }
            return Ok(cfg);
        }
        if cfg.from.host.trim().is_empty() {
            return Err(semantic_error(
                file,
                text,
                "host",
                "from.host: must not be empty".into(),
                "give the address of the upstream server (or `binlog-dir` to replay binlog files)",
            ));
        }
        Ok(cfg)
    }

    /// The server id used for the binlog dump: configured, or derived from the source id so
    /// that it is stable across restarts.
    pub fn dump_server_id(&self) -> u32 {
        self.server_id
            .unwrap_or_else(|| 0x4000_0000 | (fnv1a(self.source_id.as_bytes()) & 0x3fff_ffff))
    }

    /// The server id of one more reader of this source's binlog (a task's own stream, a
    /// shard's catch-up stream): MariaDB drops a dump when another one registers with the same
    /// id, so every concurrent reader needs its own. The relay (or the only reader) uses
    /// `dump_server_id`.
    pub fn reader_server_id(&self, reader: &str) -> u32 {
        let h = fnv1a(reader.as_bytes());
        match self.server_id {
            Some(id) => id.wrapping_add(1 + h % 4096),
            None => 0x4000_0000 | (fnv1a(self.source_id.as_bytes()) ^ h) & 0x3fff_ffff,
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(2166136261u32, |h, b| (h ^ *b as u32).wrapping_mul(16777619))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_variables_dm_sets_itself_are_named_in_a_warning() {
        let text = "source-id: s1\nfrom:\n  host: h\n  session:\n    time_zone: '+08:00'\n    max_statement_time: 30\n";
        SourceConfig::parse("source.yaml", text).unwrap();
        let w = SourceConfig::compat_warnings("source.yaml", text);
        assert!(
            w.iter()
                .any(|w| w.contains("from.session.time_zone: left out")),
            "{w:?}"
        );
        assert!(!w.iter().any(|w| w.contains("max_statement_time")), "{w:?}");
    }
}
