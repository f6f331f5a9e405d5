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
    tokio::spawn(membership.clone().run());
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
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !membership.is_leader() {
            continue;
        }
        match etcd.hand_off_etcd_leadership(&own_url).await {
            Ok(true) => tracing::info!("etcd leadership handed to another member"),
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "cannot hand off etcd leadership"),
        }
    }
}
