//! `dm master`: starts its etcd member (if embedded), connects to etcd, stands for election
//! and serves the API.

use super::{router, Master, MemberInfo, Membership};
use crate::config::MasterConfig;
use crate::error::{Error, Result};
use crate::meta::{EtcdStore, MetaStore};
use std::sync::Arc;
use std::time::Duration;

/// `plugin_host` runs shard DDL policy plugins while this master leads.
pub async fn run(cfg: MasterConfig, plugin_host: crate::hooks::Host) -> Result<()> {
    let endpoints = cfg.etcd.client_endpoints();
    if endpoints.is_empty() {
        return Err(Error::Invalid(
            "the master config needs etcd.embed (a member this master runs) or etcd.endpoints"
                .into(),
        ));
    }
    let guard = crate::api_auth::ApiGuard::new(
        &cfg.master_addr,
        cfg.advertise_addr.as_deref(),
        cfg.auth.as_ref(),
        &cfg.api_hosts,
        cfg.tls.as_ref(),
        cfg.insecure,
    )?;
    if !crate::secret::init(cfg.secret_key_path.as_deref(), false).map_err(Error::Invalid)? {
        return Err(Error::Invalid(
            "a master stores the passwords it is given encrypted and needs the deployment's key: set secret-key-path (a file with 64 hex digits, the same on every master and worker: `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > secret.key; chmod 600 secret.key`) or DM_SECRET_KEY".into(),
        ));
    }
    let listener = tokio::net::TcpListener::bind(&cfg.master_addr)
        .await
        .map_err(|e| {
            Error::Startup(format!(
                "cannot listen on {}: {e}; set master-addr in the master config",
                cfg.master_addr
            ))
        })?;
    let member_tls = super::etcd_access::member_tls(&cfg)?;
    let access = super::etcd_access::client_access(&cfg, member_tls.as_ref())?;
    if let Some(embed) = &cfg.etcd.embed {
        super::etcd_member::start(embed.clone(), cfg.name.clone(), member_tls).await?;
    }
    // With embedded members, etcd answers once a majority of the masters run.
    let etcd = EtcdStore::connect(&endpoints, &access, Duration::from_secs(300)).await?;
    // Workers get every member's URL, so they survive the death of this master's member.
    let all_endpoints = etcd.member_urls().await;
    let discovery = super::etcd_access::discovery(all_endpoints.clone(), &access)?;
    let etcd = Arc::new(etcd);
    let etcd_handle = etcd.clone();
    let store: Arc<dyn MetaStore> = etcd;
    let me = MemberInfo {
        name: cfg.name.clone(),
        addr: cfg.advertise().to_string(),
        etcd_endpoints: all_endpoints,
        insecure: guard.insecure,
    };
    let membership = Membership::new(me, discovery, store.clone(), cfg.election_ttl, plugin_host);
    // Registered beside the API, which answers (503) while etcd has no quorum yet.
    tokio::spawn({
        let membership = membership.clone();
        async move {
            match membership.register().await {
                Ok(first) => membership.run(Some(first)).await,
                Err(e) => {
                    // Going on beside a live master of the same name would split its
                    // identity: this one stops, as it would on a taken address.
                    tracing::error!(error = %e, hint = %e.hint(), "dm master stops");
                    eprintln!("Error: {e}");
                    std::process::exit(2);
                }
            }
        }
    });
    if let Some(embed) = &cfg.etcd.embed {
        tokio::spawn(keep_etcd_leader_elsewhere(
            etcd_handle,
            membership.clone(),
            embed.client_url.clone(),
        ));
    }
    tracing::info!(master = %cfg.name, addr = %cfg.master_addr, etcd = %endpoints.join(","), "dm master started");
    // Forwarded requests carry their caller's token, not one of this master's; under mutual
    // TLS the master presents its own certificate to the leader.
    let api = crate::api_tls::ApiClient::new(
        crate::config::api_ca(cfg.tls.as_ref()),
        Duration::from_secs(600),
        None,
        cfg.tls
            .as_ref()
            .filter(|t| !t.cert_allowed_cn.is_empty())
            .map(|t| (t.cert.as_path(), t.key.as_path())),
    )?;
    let app = router(
        Master {
            store,
            standalone_worker: None,
            cluster: Some(membership),
            task_files: Default::default(),
            api,
            insecure: guard.insecure,
            history: Default::default(),
        },
        guard,
    );
    crate::api_tls::serve(listener, app, cfg.tls.as_ref()).await
}

/// The leading master keeps etcd's leader on another master's member (see
/// `EtcdStore::hand_off_etcd_leadership`).
async fn keep_etcd_leader_elsewhere(
    etcd: Arc<EtcdStore>,
    membership: Arc<Membership>,
    own_url: String,
) {
    let mut pace = HandOffPace::default();
    loop {
        tokio::time::sleep(pace.wait()).await;
        if !membership.is_leader() {
            continue;
        }
        match etcd.hand_off_etcd_leadership(&own_url).await {
            Ok(true) => {
                pace.handed_off(std::time::Instant::now());
                tracing::info!(
                    next_look_in = ?pace.wait(),
                    "etcd leadership handed to another member"
                );
            }
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "cannot hand off etcd leadership"),
        }
    }
}

/// How often the leader looks whether its member leads etcd. A leadership that comes back
/// soon after a hand-off (a member that cannot keep it, on a loaded machine) is handed off
/// again only after twice the previous wait: each transfer stops etcd's writes for a moment,
/// and handing it back and forth every half second kept etcd from serving at all.
struct HandOffPace {
    wait: Duration,
    last: Option<std::time::Instant>,
}

impl HandOffPace {
    const LOOK_EVERY: Duration = Duration::from_millis(500);
    const MAX_WAIT: Duration = Duration::from_secs(300);
    /// A hand-off that held this long counts as one that worked.
    const HELD: Duration = Duration::from_secs(60);

    fn wait(&self) -> Duration {
        self.wait
    }

    fn handed_off(&mut self, now: std::time::Instant) {
        let bounced = self
            .last
            .is_some_and(|last| now.duration_since(last) < self.wait + Self::HELD);
        self.wait = if bounced {
            (self.wait * 2).min(Self::MAX_WAIT)
        } else {
            Self::LOOK_EVERY
        };
        self.last = Some(now);
    }
}

impl Default for HandOffPace {
    fn default() -> Self {
        HandOffPace {
            wait: Self::LOOK_EVERY,
            last: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HandOffPace;
    use std::time::Instant;

    #[test]
    fn a_leadership_that_keeps_coming_back_is_handed_off_ever_more_rarely() {
        let mut pace = HandOffPace::default();
        let mut now = Instant::now();
        pace.handed_off(now);
        assert_eq!(pace.wait(), HandOffPace::LOOK_EVERY);
        let mut waits = vec![];
        for _ in 0..12 {
            now += pace.wait();
            pace.handed_off(now);
            waits.push(pace.wait().as_millis());
        }
        assert_eq!(
            &waits[..6],
            &[1000, 2000, 4000, 8000, 16000, 32000],
            "{waits:?}"
        );
        assert_eq!(pace.wait(), HandOffPace::MAX_WAIT);
        // Once a hand-off held, the next one is looked for at the usual pace again.
        now += pace.wait() + HandOffPace::HELD;
        pace.handed_off(now);
        assert_eq!(pace.wait(), HandOffPace::LOOK_EVERY);
    }
}
