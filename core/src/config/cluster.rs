//! `master.yaml` and `worker.yaml`: the roles of a cluster.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MasterConfig {
    /// Unique among the masters.
    pub name: String,
    /// Where the HTTP API listens.
    #[serde(default = "super::standalone::default_master_addr")]
    pub master_addr: String,
    /// The API address other masters and `dm ctl` reach this master at (default: master-addr).
    #[serde(default)]
    pub advertise_addr: Option<String>,
    pub etcd: EtcdConfig,
    /// Seconds the leader keeps its leadership without renewing it: a killed leader is
    /// replaced after about this long.
    #[serde(default = "default_election_ttl", deserialize_with = "ttl_seconds")]
    pub election_ttl: i64,
    #[serde(default = "super::standalone::default_log_level")]
    pub log_level: String,
    /// Serve the API over HTTPS only.
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
    /// overrides it). Every master and worker of a deployment has the same key.
    #[serde(default)]
    pub secret_key_path: Option<PathBuf>,
}

impl MasterConfig {
    pub fn advertise(&self) -> &str {
        self.advertise_addr.as_deref().unwrap_or(&self.master_addr)
    }
}

/// The CA to trust when talking to the masters of a cluster whose API uses `tls`: its `ca`,
/// else its own certificate (self-signed).
pub fn api_ca(tls: Option<&super::ApiTls>) -> Option<&std::path::Path> {
    tls.map(|t| t.ca.as_deref().unwrap_or(&t.cert))
}

/// Either an etcd member that the master runs itself, or existing etcd endpoints (or both: the
/// endpoints are used besides the own member's).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EtcdConfig {
    #[serde(default)]
    pub embed: Option<EmbedEtcd>,
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// TLS to the etcd at `endpoints` (https URLs). Embedded members use the master's `tls`.
    #[serde(default)]
    pub tls: Option<EtcdTls>,
    /// etcd user, for an etcd with authentication enabled; the workers get it from the
    /// masters.
    #[serde(default)]
    pub username: Option<String>,
    /// Its password: as `dm ctl encrypt` prints it (or plain, not recommended).
    #[serde(default)]
    pub password: Option<String>,
}

/// `etcd.tls`: how a master reaches an existing etcd over TLS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EtcdTls {
    /// PEM CA of the members' certificates (the workers are given it too).
    pub ca: PathBuf,
    /// PEM certificate and key the master presents, when etcd requires client certificates
    /// (workers present their `master-tls-cert`).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
}

impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("embed", &self.embed)
            .field("endpoints", &self.endpoints)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "******"))
            .finish()
    }
}

impl EtcdConfig {
    /// Client URLs to reach etcd at: the own member first.
    pub fn client_endpoints(&self) -> Vec<String> {
        let mut out: Vec<String> = self.embed.iter().map(|e| e.client_url.clone()).collect();
        for e in &self.endpoints {
            if !out.contains(e) {
                out.push(e.clone());
            }
        }
        out
    }
}

/// An etcd member started and supervised by the master, like TiDB DM's embedded etcd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EmbedEtcd {
    /// Member name (default: the master's name).
    #[serde(default)]
    pub name: Option<String>,
    pub data_dir: PathBuf,
    /// `http://host:port` clients (masters, workers) use.
    pub client_url: String,
    /// `http://host:port` the other members use.
    pub peer_url: String,
    /// `name=peer-url,...` of every member, as etcd's `--initial-cluster`.
    pub initial_cluster: String,
    /// The `etcd` binary (default: found on PATH).
    #[serde(default)]
    pub bin: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WorkerConfig {
    /// Unique among the workers.
    pub name: String,
    /// API addresses of the masters; the worker asks them where etcd is.
    pub master_addrs: Vec<String>,
    /// Seconds the worker's registration lives without renewal: after a crash its sources
    /// move to another worker after about this long.
    #[serde(default = "default_keepalive_ttl", deserialize_with = "ttl_seconds")]
    pub keepalive_ttl: i64,
    #[serde(default = "super::standalone::default_log_level")]
    pub log_level: String,
    /// Where the worker serves `/metrics` (its subtasks and relay logs); none by default.
    #[serde(default)]
    pub status_addr: Option<String>,
    /// The masters' API uses HTTPS with certificates signed by this CA (PEM).
    #[serde(default)]
    pub master_tls_ca: Option<PathBuf>,
    /// PEM certificate and key the worker presents to masters that require client
    /// certificates (`tls.cert-allowed-cn`).
    #[serde(default)]
    pub master_tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub master_tls_key: Option<PathBuf>,
    /// A file holding the token to give the masters' API when it asks for one (an admin
    /// token; DM_TOKEN overrides it).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// File with the key that encrypts stored passwords (64 hex digits; DM_SECRET_KEY
    /// overrides it). Every master and worker of a deployment has the same key.
    #[serde(default)]
    pub secret_key_path: Option<PathBuf>,
    /// Where the worker keeps local state: relay logs of its sources (`relay-dir`).
    #[serde(default = "default_worker_data_dir")]
    pub data_dir: std::path::PathBuf,
}

fn default_worker_data_dir() -> std::path::PathBuf {
    std::path::PathBuf::from("dm-worker-data")
}

/// A lease's TTL: whole seconds, 1 to a day (a timer is set from it; a negative or huge
/// value would overflow it). Refused in the visitor, so that the error has the value's line.
fn ttl_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = d.deserialize_i64(super::Bounded(1, 86_400, "a TTL of 1 to 86400 seconds"))?;
    Ok(v as i64)
}

fn default_election_ttl() -> i64 {
    2
}
fn default_keepalive_ttl() -> i64 {
    3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_file;
    use std::path::Path;

    #[test]
    fn sample_cluster_files_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cluster");
        for i in 1..=3 {
            let m: MasterConfig = load_file(&dir.join(format!("master{i}.yaml"))).unwrap();
            assert_eq!(m.election_ttl, 2);
            assert_eq!(m.etcd.client_endpoints().len(), 1);
        }
        let w: WorkerConfig = load_file(&dir.join("worker1.yaml")).unwrap();
        assert_eq!(w.master_addrs.len(), 3);
    }

    #[test]
    fn a_ttl_out_of_range_is_refused_where_it_is_written() {
        for bad in ["-1", "0", "9223372036854775807"] {
            let e = crate::config::parse_yaml::<WorkerConfig>(
                "worker.yaml",
                &format!("name: w\nmaster-addrs: []\nkeepalive-ttl: {bad}\n"),
            )
            .unwrap_err();
            assert!(
                e.to_string().contains("worker.yaml:3") && e.to_string().contains("1 to 86400"),
                "{e}"
            );
        }
        let w = crate::config::parse_yaml::<WorkerConfig>(
            "worker.yaml",
            "name: w\nmaster-addrs: []\nkeepalive-ttl: 10\n",
        )
        .unwrap();
        assert_eq!(w.keepalive_ttl, 10);
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = crate::config::parse_yaml::<WorkerConfig>(
            "worker.yaml",
            "name: w\nmaster-addrs: []\nkeepalive: 3\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("worker.yaml:3"), "{e}");
        assert!(e.to_string().contains("keepalive"), "{e}");
        assert!(
            e.hint().contains("did you mean `keepalive-ttl`"),
            "{}",
            e.hint()
        );
        let e =
            crate::config::parse_yaml::<WorkerConfig>("worker.yaml", "name: w\nmaster-adrs: []\n")
                .unwrap_err();
        assert!(
            e.hint().contains("did you mean `master-addrs`"),
            "{}",
            e.hint()
        );
        let e = crate::config::parse_yaml::<WorkerConfig>(
            "worker.yaml",
            "name: w\nmaster-addrs: []\ncolour: red\n",
        )
        .unwrap_err();
        assert!(!e.hint().contains("did you mean"), "{}", e.hint());
    }
}
