//! `dm.yaml`: settings of `dm standalone` (master and worker roles in one process).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StandaloneConfig {
    #[serde(default = "default_name")]
    pub name: String,
    /// Where the embedded metadata store keeps sources, tasks and their state.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Address of the HTTP API that `dm ctl` talks to.
    #[serde(default = "default_master_addr")]
    pub master_addr: String,
    /// `error`, `warn`, `info`, `debug` or a tracing filter.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Serve the API over HTTPS only (`cert`, `key`).
    #[serde(default)]
    pub tls: Option<super::ApiTls>,
    /// Tokens the API asks for; without, it asks for none (then it serves loopback only).
    #[serde(default)]
    pub auth: Option<super::ApiAuth>,
    /// Host names the API answers to, besides its own addresses and the loopback names.
    #[serde(default)]
    pub api_hosts: Vec<String>,
    /// Serve the API beyond loopback without TLS and tokens (not recommended).
    #[serde(default)]
    pub insecure: bool,
    /// File with the key that encrypts stored passwords (64 hex digits; DM_SECRET_KEY
    /// overrides it); default `<data-dir>/secret.key`, made on the first start.
    #[serde(default)]
    pub secret_key_path: Option<PathBuf>,
}

fn default_name() -> String {
    "dm-standalone".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from(".dm-data")
}
pub fn default_master_addr() -> String {
    "127.0.0.1:8261".into()
}
pub(super) fn default_log_level() -> String {
    "info".into()
}

impl Default for StandaloneConfig {
    fn default() -> Self {
        StandaloneConfig {
            name: default_name(),
            data_dir: default_data_dir(),
            master_addr: default_master_addr(),
            log_level: default_log_level(),
            tls: None,
            auth: None,
            api_hosts: vec![],
            insecure: false,
            secret_key_path: None,
        }
    }
}
