//! Connection settings of an upstream or downstream database (`from` in a source file,
//! `target-database` in a task file).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DbConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_user")]
    pub user: String,
    #[serde(default)]
    pub password: String,
    /// Extra session variables set on every connection dm opens.
    #[serde(default)]
    pub session: BTreeMap<String, String>,
}

fn default_port() -> u16 {
    3306
}

fn default_user() -> String {
    "root".into()
}

impl DbConfig {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The config with the password hidden, for logs and status.
    pub fn redacted(&self) -> DbConfig {
        DbConfig {
            password: if self.password.is_empty() {
                String::new()
            } else {
                "******".into()
            },
            ..self.clone()
        }
    }
}
