//! `dm standalone`: the master and worker roles in one process over the embedded store.

use crate::config::StandaloneConfig;
use crate::error::{Error, Result};
use crate::fence::Fence;
use crate::master::{router, Master};
use crate::meta::{EmbeddedStore, MetaStore};
use crate::worker::Worker;
use std::sync::Arc;

/// `plugin_host` runs the plugins tasks name (row filters, routers, shard DDL policies).
pub async fn run(cfg: StandaloneConfig, plugin_host: crate::hooks::Host) -> Result<()> {
    let guard = crate::api_auth::ApiGuard::new(
        &cfg.master_addr,
        None,
        cfg.auth.as_ref(),
        &cfg.api_hosts,
        cfg.tls.as_ref(),
        cfg.insecure,
    )?;
    let store: Arc<dyn MetaStore> = Arc::new(EmbeddedStore::open(&cfg.data_dir)?);
    let key = cfg
        .secret_key_path
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("secret.key"));
    crate::secret::init(Some(&key), true).map_err(Error::Invalid)?;
    let worker_name = format!("{}-worker", cfg.name);
    let listener = tokio::net::TcpListener::bind(&cfg.master_addr)
        .await
        .map_err(|e| {
            Error::Startup(format!(
                "cannot listen on {}: {e}; set master-addr in dm.yaml",
                cfg.master_addr
            ))
        })?;
    tracing::info!(addr = %cfg.master_addr, data_dir = %cfg.data_dir.display(), "dm standalone started");
    let _coordinator = crate::abort_on_drop::AbortOnDrop(tokio::spawn(
        crate::shard::coordinator::run(store.clone(), plugin_host.clone()),
    ));
    let _validation = crate::abort_on_drop::AbortOnDrop(tokio::spawn(
        crate::master::validation::run(store.clone()),
    ));
    let worker = Worker::new(
        worker_name.clone(),
        store.clone(),
        Fence::open(),
        cfg.data_dir.clone(),
        plugin_host,
    );
    let worker = tokio::spawn(worker.run());
    let app = router(
        Master {
            store,
            standalone_worker: Some(worker_name),
            cluster: None,
            task_files: Default::default(),
            api: crate::api_tls::ApiClient::new(
                None,
                std::time::Duration::from_secs(600),
                None,
                None,
            )?,
            insecure: guard.insecure,
            history: Default::default(),
        },
        guard,
    );
    let served = crate::api_tls::serve(listener, app, cfg.tls.as_ref()).await;
    worker.abort();
    served
}
