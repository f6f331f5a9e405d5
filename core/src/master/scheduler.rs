//! The leader's scheduler: binds each source to one live worker (one source per worker, as in
//! TiDB DM), preferring the worker that ran the source last, and unbinds a source whose worker
//! lost its lease. A worker stops writing before its lease can run out (see `fence`), so by
//! the time the lease key is gone the source is free to move.

use crate::error::Result;
use crate::meta::{keys, MetaStore};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Runs until aborted (the master stops leading).
pub async fn run(store: Arc<dyn MetaStore>) {
    let mut changes = store.watch(keys::ROOT).await.ok();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        crate::meta::next_change(&mut changes, &mut tick).await;
        if let Err(e) = schedule_once(store.as_ref()).await {
            tracing::warn!(error = %e, "scheduling failed");
        }
    }
}

async fn names(store: &dyn MetaStore, prefix: &str) -> Result<BTreeSet<String>> {
    Ok(crate::meta::list_names(store, prefix)
        .await?
        .into_iter()
        .collect())
}

/// One pass: unbind sources of dead workers, bind free sources to free live workers.
pub async fn schedule_once(store: &dyn MetaStore) -> Result<()> {
    let alive = names(store, keys::ALIVE_WORKER).await?;
    let sources = names(store, keys::SOURCE).await?;
    let mut bound: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in store.list(keys::BOUND).await? {
        let source = k[keys::BOUND.len()..].to_string();
        let worker = String::from_utf8_lossy(&v).into_owned();
        if alive.contains(&worker) && sources.contains(&source) {
            bound.insert(source, worker);
        } else if store.compare_and_delete(&k, &v).await? {
            tracing::warn!(source = %source, worker = %worker, "worker is gone: source unbound");
        }
    }
    let busy: BTreeSet<&String> = bound.values().collect();
    let mut free: Vec<String> = alive
        .iter()
        .filter(|w| !busy.contains(w))
        .cloned()
        .collect();
    let moving = names(store, keys::MOVING).await?;
    for source in sources
        .iter()
        .filter(|s| !bound.contains_key(*s) && !moving.contains(*s))
    {
        if free.is_empty() {
            tracing::debug!(source = %source, "no free worker for the source");
            break;
        }
        let last = store
            .get(&keys::last_bound(source))
            .await?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        let pick = last
            .and_then(|l| free.iter().position(|w| *w == l))
            .unwrap_or(0);
        let worker = free.remove(pick);
        if store
            .compare_and_put(&keys::bound(source), None, worker.clone().into_bytes())
            .await?
        {
            store
                .put(&keys::last_bound(source), worker.clone().into_bytes())
                .await?;
            tracing::info!(source = %source, worker = %worker, "source bound");
        }
    }
    Ok(())
}
