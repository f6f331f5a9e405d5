//! `source.yaml`: one upstream MySQL or MariaDB server.

use super::{parse_yaml, semantic_error, DbConfig};
use crate::error::Result;
use serde::{Deserialize, Serialize};

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
    pub from: DbConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Mysql,
    Mariadb,
}

impl SourceConfig {
    pub fn parse(file: &str, text: &str) -> Result<Self> {
        let cfg: SourceConfig = parse_yaml(file, text)?;
        super::check_password(file, text, "from.password", &cfg.from.password)?;
        if cfg.source_id.trim().is_empty() {
            return Err(semantic_error(
                file,
                text,
                "source-id",
                "source-id: must not be empty".into(),
                "name the source, e.g. `source-id: mysql-01`",
            ));
        }
        if cfg.from.host.trim().is_empty() {
            return Err(semantic_error(
                file,
                text,
                "host",
                "from.host: must not be empty".into(),
                "give the address of the upstream server",
            ));
        }
        Ok(cfg)
    }

    /// The server id used for the binlog dump: configured, or derived from the source id so
    /// that it is stable across restarts.
    pub fn dump_server_id(&self) -> u32 {
        self.server_id.unwrap_or_else(|| {
            let h = self
                .source_id
                .bytes()
                .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
            0x4000_0000 | (h & 0x3fff_ffff)
        })
    }
}
