//! `dm worker`: finds etcd through the masters, registers under a lease and runs what the
//! leader binds to it. The lease opens the worker's fence; when renewals fail for longer than
//! the lease, the fence closes and every subtask stops before etcd lets the lease go.

use super::Worker;
use crate::api::types::EtcdDiscovery;
use crate::api_tls::read_pem;
use crate::config::WorkerConfig;
use crate::error::Result;
use crate::fence::{BootInstant, Fence};
use crate::meta::MemberInfo;
use crate::meta::{self, keys, EtcdStore, MetaStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Room for the clock of this process against etcd's.
const MARGIN: Duration = Duration::from_millis(300);

/// `plugin_host` runs the plugins of the tasks this worker runs.
pub async fn run(cfg: WorkerConfig, plugin_host: crate::hooks::Host) -> Result<()> {
    if !crate::config::is_safe_name(&cfg.name) {
        return Err(crate::Error::Invalid(format!(
            "worker name `{}` may only hold letters, digits, `_`, `-` and `.` (at most 64): it names metadata keys and locks",
            cfg.name
        )));
    }
    // Stored passwords are encrypted: without the key the worker cannot connect.
    if !crate::secret::init(cfg.secret_key_path.as_deref(), false).map_err(crate::Error::Invalid)? {
        tracing::warn!("no secret key (secret-key-path or DM_SECRET_KEY): this worker cannot use the encrypted passwords the masters store");
    }
    // Bound first: a taken port is a config error, reported before anything starts.
    let status = match &cfg.status_addr {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            crate::Error::Startup(format!(
                "cannot listen on {addr}: {e}; set status-addr in the worker config"
            ))
        })?),
        None => None,
    };
    let identity = cfg
        .master_tls_cert
        .as_deref()
        .zip(cfg.master_tls_key.as_deref());
    let etcd = {
        let token = worker_token(&cfg)?;
        let api = crate::api_tls::ApiClient::new(
            cfg.master_tls_ca.as_deref(),
            Duration::from_secs(3),
            token.as_deref(),
            identity,
        )?;
        discover_etcd(&cfg.master_addrs, &api).await
    };
    // The same certificate the worker shows the masters opens etcd's members to it.
    let identity_pem = match identity {
        Some((cert, key)) => Some((
            read_pem(cert, "master-tls-cert")?,
            read_pem(key, "master-tls-key")?,
        )),
        None => None,
    };
    let endpoints = etcd.endpoints.clone();
    let access = etcd.access(identity_pem)?;
    let store: Arc<dyn MetaStore> =
        Arc::new(EtcdStore::connect(&endpoints, &access, Duration::from_secs(120)).await?);
    let me = MemberInfo {
        name: cfg.name.clone(),
        addr: String::new(),
        etcd_endpoints: vec![],
        insecure: false,
    };
    // The name is this worker's identity in bindings and apply locks: refused while another
    // live worker holds it (a restarted worker waits for its old lease to run out).
    let ttl = cfg.keepalive_ttl;
    let first = register(store.as_ref(), &cfg.name, ttl).await?;
    meta::put_json(store.as_ref(), &keys::member_worker(&cfg.name), &me).await?;
    let fence = Fence::closed();
    let worker = Worker::new(
        cfg.name.clone(),
        store.clone(),
        fence.clone(),
        cfg.data_dir.clone(),
        plugin_host,
    );
    tokio::spawn(keep_lease(
        store,
        cfg.name.clone(),
        ttl,
        fence,
        worker.changed.clone(),
        Some(first),
    ));
    if let Some(listener) = status {
        let metrics = worker.metrics.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let m = metrics.clone();
                async move { m.lock().unwrap_or_else(|p| p.into_inner()).clone() }
            }),
        );
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "worker status server stopped");
            }
        });
    }
    tracing::info!(worker = %cfg.name, etcd = %endpoints.join(","), "dm worker started");
    worker.run().await;
    Ok(())
}

/// Asks the masters where etcd is and how to reach it, until one answers.
async fn discover_etcd(masters: &[String], api: &crate::api_tls::ApiClient) -> EtcdDiscovery {
    let mut warned = Instant::now() - Duration::from_secs(60);
    loop {
        for m in masters {
            let url = format!("{}/api/v1/cluster/etcd", api.base(m));
            if let Ok(resp) = api.http.get(&url).send().await {
                if !resp.status().is_success() {
                    // Refused (no or a wrong token or certificate): say so rather than wait
                    // quietly.
                    if warned.elapsed() > Duration::from_secs(10) {
                        tracing::warn!(master = %m, status = %resp.status(), "the master refuses to say where etcd is: give the worker an admin token (token-file) or a certificate with an allowed name");
                        warned = Instant::now();
                    }
                    continue;
                }
                if let Ok(d) = resp.json::<EtcdDiscovery>().await {
                    if !d.endpoints.is_empty() {
                        return d;
                    }
                }
            }
        }
        if warned.elapsed() > Duration::from_secs(10) {
            tracing::warn!(masters = %masters.join(","), "no master answers yet; waiting");
            warned = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A lease and when it was asked for.
type Lease = (i64, BootInstant);

/// Creates `/dm/alive/worker/<name>` under a new lease, waiting up to twice the TTL for a
/// lease of an earlier run of this worker to run out; refuses a name another live worker
/// holds.
async fn register(store: &dyn MetaStore, name: &str, ttl: i64) -> Result<Lease> {
    let deadline = Instant::now() + Duration::from_secs(2 * ttl as u64 + 1);
    loop {
        match try_register(store, name, ttl).await {
            Ok(Some(lease)) => return Ok(lease),
            Ok(None) if Instant::now() >= deadline => {
                return Err(crate::Error::Invalid(format!(
                    "a worker named `{name}` is already running (it keeps its lease alive): give this worker another `name`"
                )))
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot register with etcd yet"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One try: `None` when another lease holds the name.
async fn try_register(store: &dyn MetaStore, name: &str, ttl: i64) -> Result<Option<Lease>> {
    let granted_at = BootInstant::now();
    let lease = store.grant_lease(ttl).await?;
    let key = keys::alive_worker(name);
    if store
        .create_leased(&key, name.as_bytes().to_vec(), lease)
        .await?
    {
        return Ok(Some((lease, granted_at)));
    }
    let _ = store.revoke_lease(lease).await;
    Ok(None)
}

/// Keeps `/dm/alive/worker/<name>` under a lease (`first`, or one it registers) and renews
/// it; a lost lease closes the fence, and a new one opens a new epoch.
async fn keep_lease(
    store: Arc<dyn MetaStore>,
    name: String,
    ttl: i64,
    fence: Fence,
    changed: Arc<tokio::sync::Notify>,
    mut first: Option<Lease>,
) {
    let ttl_d = Duration::from_secs(ttl as u64);
    // Often enough that a renewal made just before etcd loses its leader leaves the fence
    // open through the election that follows (~1-1.5 s).
    let renew_every = (ttl_d / 10).max(Duration::from_millis(200));
    loop {
        let (lease, granted_at) = match first.take() {
            Some(l) => l,
            None => match try_register(store.as_ref(), &name, ttl).await {
                Ok(Some(l)) => l,
                Ok(None) => {
                    // The old lease's key is still there until etcd expires it.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot get a lease from etcd");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        fence.new_lease(granted_at + ttl_d - MARGIN);
        changed.notify_one();
        tracing::info!(worker = %name, lease, "registered");
        let mut pause = renew_every;
        loop {
            tokio::time::sleep(pause).await;
            let sent = BootInstant::now();
            match store.keep_alive(lease, fence.remaining()).await {
                Ok(left) if left > 0 => {
                    fence.extend_until(sent + Duration::from_secs(left as u64) - MARGIN);
                    pause = renew_every;
                }
                Ok(_) => break,
                Err(e) => {
                    // Likely an etcd member that just died: another try soon goes elsewhere.
                    tracing::warn!(error = %e, "lease renewal failed; trying again");
                    pause = Duration::from_millis(100);
                }
            }
            if !fence.is_open() {
                break;
            }
        }
        fence.close();
        changed.notify_one();
        tracing::warn!(worker = %name, "lease lost: subtasks stop; registering again");
    }
}

/// The token the worker gives the masters' API: DM_TOKEN, else the `token-file`.
fn worker_token(cfg: &crate::config::WorkerConfig) -> crate::Result<Option<String>> {
    if let Ok(t) = std::env::var("DM_TOKEN") {
        return Ok(Some(t.trim().to_string()));
    }
    match &cfg.token_file {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| Some(t.trim().to_string()))
            .map_err(|e| {
                crate::Error::Invalid(format!(
                    "token-file {}: {e}; write the worker's API token there",
                    path.display()
                ))
            }),
        None => Ok(None),
    }
}
