//! `dm worker`: finds etcd through the masters, registers under a lease and runs what the
//! leader binds to it. The lease opens the worker's fence; when renewals fail for longer than
//! the lease, the fence closes and every subtask stops before etcd lets the lease go.

use super::Worker;
use crate::config::WorkerConfig;
use crate::error::Result;
use crate::fence::Fence;
use crate::master::MemberInfo;
use crate::meta::{self, keys, EtcdStore, MetaStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Room for the clock of this process against etcd's.
const MARGIN: Duration = Duration::from_millis(300);

pub async fn run(cfg: WorkerConfig) -> Result<()> {
    // Bound first: a taken port is a config error, reported before anything starts.
    let status = match &cfg.status_addr {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            crate::Error::Invalid(format!(
                "cannot listen on {addr}: {e}; set status-addr in the worker config"
            ))
        })?),
        None => None,
    };
    let endpoints = {
        let api =
            crate::api_tls::ApiClient::new(cfg.master_tls_ca.as_deref(), Duration::from_secs(3))?;
        discover_etcd(&cfg.master_addrs, &api).await
    };
    let store: Arc<dyn MetaStore> =
        Arc::new(EtcdStore::connect(&endpoints, Duration::from_secs(120)).await?);
    let me = MemberInfo {
        name: cfg.name.clone(),
        addr: String::new(),
        etcd_endpoints: vec![],
    };
    meta::put_json(store.as_ref(), &keys::member_worker(&cfg.name), &me).await?;
    let fence = Fence::closed();
    let worker = Worker::new(
        cfg.name.clone(),
        store.clone(),
        fence.clone(),
        cfg.data_dir.clone(),
    );
    tokio::spawn(keep_lease(
        store,
        cfg.name.clone(),
        cfg.keepalive_ttl,
        fence,
        worker.changed.clone(),
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

/// Asks the masters where etcd is, until one answers.
async fn discover_etcd(masters: &[String], api: &crate::api_tls::ApiClient) -> Vec<String> {
    let mut warned = Instant::now() - Duration::from_secs(60);
    loop {
        for m in masters {
            let url = format!("{}/api/v1/cluster/etcd", api.base(m));
            if let Ok(resp) = api.http.get(&url).send().await {
                if let Ok(eps) = resp.json::<Vec<String>>().await {
                    if !eps.is_empty() {
                        return eps;
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

/// Registers `/dm/alive/worker/<name>` under a lease and renews it; a lost lease closes the
/// fence, and a new one opens a new epoch.
async fn keep_lease(
    store: Arc<dyn MetaStore>,
    name: String,
    ttl: i64,
    fence: Fence,
    changed: Arc<tokio::sync::Notify>,
) {
    let ttl_d = Duration::from_secs(ttl as u64);
    let renew_every = (ttl_d / 3).max(Duration::from_millis(300));
    loop {
        let granted_at = Instant::now();
        let lease = match store.grant_lease(ttl).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot get a lease from etcd");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if let Err(e) = store
            .put_leased(&keys::alive_worker(&name), name.clone().into_bytes(), lease)
            .await
        {
            tracing::warn!(error = %e, "cannot register as alive");
            continue;
        }
        fence.new_lease(granted_at + ttl_d - MARGIN);
        changed.notify_one();
        tracing::info!(worker = %name, lease, "registered");
        let mut pause = renew_every;
        loop {
            tokio::time::sleep(pause).await;
            let sent = Instant::now();
            match store.keep_alive(lease).await {
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
