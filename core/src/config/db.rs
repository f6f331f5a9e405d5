//! Connection settings of an upstream or downstream database (`from` in a source file,
//! `target-database` in a task file).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, PartialEq, Serialize, Deserialize)]
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
    /// TLS (DM's `security` fields): present means every connection must use TLS.
    #[serde(default)]
    pub security: Option<Security>,
}

/// TLS settings of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Security {
    /// PEM file of the CA that signed the server's certificate (else the public web roots).
    #[serde(default)]
    pub ssl_ca: Option<PathBuf>,
    /// PEM files of a client certificate and its key, for servers that require one.
    #[serde(default)]
    pub ssl_cert: Option<PathBuf>,
    #[serde(default)]
    pub ssl_key: Option<PathBuf>,
    /// Check that the certificate names `host` (on by default).
    #[serde(default = "yes")]
    pub verify_hostname: bool,
}

/// No server (a `binlog-dir` source leaves `from` out): connecting to it is refused.
impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            host: String::new(),
            port: default_port(),
            user: default_user(),
            password: String::new(),
            session: BTreeMap::new(),
            security: None,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_port() -> u16 {
    3306
}

fn default_user() -> String {
    "root".into()
}

/// Never prints the password, so no log or panic message can carry it.
impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "******"
                },
            )
            .field("session", &self.session)
            .field("security", &self.security)
            .finish()
    }
}

impl DbConfig {
    /// Encrypts the password for storage (a master stores none in clear).
    pub fn seal_password(&mut self) -> crate::Result<()> {
        self.password = crate::secret::seal(&self.password).map_err(crate::Error::Invalid)?;
        Ok(())
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}
