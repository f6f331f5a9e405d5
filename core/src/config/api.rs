//! `tls` and `auth` of dm.yaml / master.yaml: how the master API is served and who may use
//! it (`api_tls` and `api_auth` act on them).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `tls` of dm.yaml / master.yaml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ApiTls {
    /// PEM certificate chain the API presents.
    pub cert: PathBuf,
    /// PEM private key of that certificate.
    pub key: PathBuf,
    /// PEM CA that signed the other masters' certificates (a cluster forwards to its leader).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Mutual TLS (TiDB DM's `cert-allowed-cn`): only clients presenting a certificate signed
    /// by `client-ca` (default `ca`) whose common name is listed may use the API, as admins.
    /// Masters present their own certificate to each other, so list their names too.
    #[serde(default)]
    pub cert_allowed_cn: Vec<String>,
    /// PEM CA of the client certificates (default: `ca`).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// `auth` of dm.yaml / master.yaml.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ApiAuth {
    /// Tokens that may use the API (`dm ctl token new` makes one).
    pub tokens: Vec<ApiToken>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ApiToken {
    /// Who holds it (shown in logs).
    pub name: String,
    pub role: Role,
    /// SHA-256 of the token, hex.
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads: status, members, metrics.
    Viewer,
    /// Everything.
    Admin,
}
