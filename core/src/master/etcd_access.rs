//! Who may reach dm's metadata in etcd. A master with `tls` runs its embedded member with
//! client and peer TLS and requires client certificates signed by the deployment's CA (as
//! TiDB DM's masters do with their certificates); an existing etcd (`etcd.endpoints`) is
//! reached with `etcd.tls` and an etcd user. Workers learn all of it from
//! `/api/v1/cluster/etcd`, which only authenticated callers may read.

pub use crate::api::types::EtcdDiscovery;
use crate::api_auth::{host_of, is_loopback};
use crate::api_tls::read_pem;
use crate::config::MasterConfig;
use crate::error::{Error, Result};
use crate::meta::EtcdAccess;
use std::path::PathBuf;

/// The TLS files of the embedded member: the master's own certificate, for clients and peers.
#[derive(Debug, Clone)]
pub struct MemberTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl EtcdDiscovery {
    /// How a worker reaches etcd: what the masters said, plus its own certificate.
    pub fn access(&self, identity: Option<(String, String)>) -> Result<EtcdAccess> {
        if self.client_cert_required && identity.is_none() {
            return Err(Error::Invalid(
                "etcd requires a client certificate signed by the deployment's CA: set master-tls-cert and master-tls-key in the worker config".into(),
            ));
        }
        let user = match (&self.username, &self.password) {
            (Some(u), Some(p)) => Some((
                u.clone(),
                crate::secret::reveal(p).map_err(|e| {
                    Error::Invalid(format!("the etcd password the masters gave: {e}"))
                })?,
            )),
            _ => None,
        };
        Ok(EtcdAccess {
            ca_pem: self.ca.clone(),
            identity: self.ca.as_ref().and(identity),
            user,
        })
    }
}

/// Every URL the embedded member listens on or names: its own and `initial-cluster`'s.
fn member_urls(cfg: &MasterConfig) -> Vec<(String, &'static str)> {
    let Some(embed) = &cfg.etcd.embed else {
        return vec![];
    };
    let mut urls = vec![
        (embed.client_url.clone(), "etcd.embed.client-url"),
        (embed.peer_url.clone(), "etcd.embed.peer-url"),
    ];
    for member in embed.initial_cluster.split(',') {
        if let Some((_, url)) = member.split_once('=') {
            urls.push((url.trim().to_string(), "etcd.embed.initial-cluster"));
        }
    }
    urls
}

/// The embedded member's TLS (the master's `tls`), after checking that its URLs agree: https
/// with TLS; without TLS, loopback only unless `insecure`.
pub fn member_tls(cfg: &MasterConfig) -> Result<Option<MemberTls>> {
    if cfg.etcd.embed.is_none() {
        return Ok(None);
    }
    let urls = member_urls(cfg);
    let Some(tls) = &cfg.tls else {
        for (url, field) in &urls {
            if url.starts_with("https://") {
                return Err(Error::Invalid(format!(
                    "{field}: {url} is https, but the master has no `tls`: its member serves TLS with the master's certificate; add tls (cert, key, ca)"
                )));
            }
            if !cfg.insecure && !is_loopback(&host_of(url)) {
                return Err(Error::Invalid(format!(
                    "{field}: the etcd member would serve dm's metadata on {url} to anyone who reaches it: give the master `tls` (cert, key, ca; its member then requires client certificates signed by ca and the URLs are https), or set `insecure: true` on a network only dm reaches"
                )));
            }
        }
        return Ok(None);
    };
    let Some(ca) = &tls.ca else {
        return Err(Error::Invalid(
            "tls.ca: the embedded etcd member requires client and peer certificates signed by the deployment's CA; give it (tls.ca)".into(),
        ));
    };
    for (url, field) in &urls {
        if !url.starts_with("https://") {
            return Err(Error::Invalid(format!(
                "{field}: {url} must be https:// because the master has `tls`: its etcd member serves TLS with the master's certificate"
            )));
        }
    }
    Ok(Some(MemberTls {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
        ca: ca.clone(),
    }))
}

/// How this master reaches etcd: `etcd.tls` for existing endpoints, else the member's TLS; the
/// etcd user if configured.
pub fn client_access(cfg: &MasterConfig, member: Option<&MemberTls>) -> Result<EtcdAccess> {
    let mut access = EtcdAccess::default();
    if let Some(tls) = &cfg.etcd.tls {
        access.ca_pem = Some(read_pem(&tls.ca, "etcd.tls.ca")?);
        access.identity = match (&tls.cert, &tls.key) {
            (Some(c), Some(k)) => {
                Some((read_pem(c, "etcd.tls.cert")?, read_pem(k, "etcd.tls.key")?))
            }
            (None, None) => None,
            _ => {
                return Err(Error::Invalid(
                    "etcd.tls: give both cert and key, or neither".into(),
                ))
            }
        };
    } else if let Some(m) = member {
        access.ca_pem = Some(read_pem(&m.ca, "tls.ca")?);
        access.identity = Some((read_pem(&m.cert, "tls.cert")?, read_pem(&m.key, "tls.key")?));
    }
    access.user = match (&cfg.etcd.username, &cfg.etcd.password) {
        (Some(u), p) => Some((
            u.clone(),
            crate::secret::reveal(p.as_deref().unwrap_or(""))
                .map_err(|e| Error::Invalid(format!("etcd.password: {e}")))?,
        )),
        (None, Some(_)) => {
            return Err(Error::Invalid(
                "etcd.password without etcd.username: give the etcd user too".into(),
            ))
        }
        (None, None) => None,
    };
    Ok(access)
}

/// What workers are told: the endpoints, the CA, the user with its password sealed.
pub fn discovery(endpoints: Vec<String>, access: &EtcdAccess) -> Result<EtcdDiscovery> {
    let (username, password) = match &access.user {
        Some((u, p)) => (
            Some(u.clone()),
            Some(crate::secret::seal(p).map_err(Error::Invalid)?),
        ),
        None => (None, None),
    };
    Ok(EtcdDiscovery {
        endpoints,
        ca: access.ca_pem.clone(),
        client_cert_required: access.identity.is_some(),
        username,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(etcd_urls: (&str, &str), tls: bool, insecure: bool) -> MasterConfig {
        let (client, peer) = etcd_urls;
        let mut text = format!(
            "name: m1\netcd:\n  embed:\n    data-dir: /tmp/x\n    client-url: {client}\n    peer-url: {peer}\n    initial-cluster: m1={peer}\n"
        );
        if tls {
            text += "tls:\n  cert: c.pem\n  key: k.pem\n  ca: ca.pem\n";
        }
        if insecure {
            text += "insecure: true\n";
        }
        crate::config::parse_yaml("master.yaml", &text).unwrap()
    }

    fn refusal(cfg: &MasterConfig) -> String {
        member_tls(cfg).unwrap_err().to_string()
    }

    #[test]
    fn members_serve_tls_exactly_when_the_master_does() {
        let https = ("https://127.0.0.1:2379", "https://127.0.0.1:2380");
        let http = ("http://127.0.0.1:2379", "http://127.0.0.1:2380");
        let m = member_tls(&master(https, true, false)).unwrap().unwrap();
        assert_eq!(m.ca, PathBuf::from("ca.pem"));
        assert!(refusal(&master(http, true, false)).contains("etcd.embed.client-url"));
        assert!(refusal(&master(https, false, false)).contains("has no `tls`"));
        assert!(member_tls(&master(http, false, false)).unwrap().is_none());
        // Beyond loopback without TLS: only when the user says insecure.
        let open = ("http://10.0.0.5:2379", "http://10.0.0.5:2380");
        let e = refusal(&master(open, false, false));
        assert!(
            e.contains("http://10.0.0.5:2379") && e.contains("insecure"),
            "{e}"
        );
        assert!(member_tls(&master(open, false, true)).unwrap().is_none());
    }

    #[test]
    fn the_secure_sample_cluster_is_accepted() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cluster-secure");
        for i in 1..=3 {
            let m: MasterConfig =
                crate::config::load_file(&dir.join(format!("master{i}.yaml"))).unwrap();
            assert!(member_tls(&m).unwrap().is_some());
            assert!(!crate::api_auth::is_loopback(&host_of(&m.master_addr)));
        }
        let m: MasterConfig = crate::config::load_file(&dir.join("etcd-existing.yaml")).unwrap();
        assert_eq!(m.etcd.username.as_deref(), Some("dm"));
        let w: crate::config::WorkerConfig =
            crate::config::load_file(&dir.join("worker1.yaml")).unwrap();
        assert!(w.master_tls_cert.is_some());
    }

    #[test]
    fn workers_are_told_the_user_sealed_and_need_a_certificate_when_members_want_one() {
        let dir = tempfile::tempdir().unwrap();
        crate::secret::init(Some(&dir.path().join("secret.key")), true).unwrap();
        let access = EtcdAccess {
            ca_pem: Some("CA".into()),
            identity: Some(("C".into(), "K".into())),
            user: Some(("dm".into(), "pw".into())),
        };
        let d = discovery(vec!["https://e:2379".into()], &access).unwrap();
        assert!(d.client_cert_required);
        assert!(d.password.as_deref().unwrap().starts_with("enc:"));
        let json = serde_json::to_string(&d).unwrap();
        assert!(!json.contains("\"pw\""), "{json}");
        assert!(d.access(None).is_err());
        let w = d.access(Some(("WC".into(), "WK".into()))).unwrap();
        assert_eq!(w.user, Some(("dm".into(), "pw".into())));
        assert_eq!(w.identity, Some(("WC".into(), "WK".into())));
    }
}
