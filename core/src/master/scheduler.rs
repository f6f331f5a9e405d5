//! The leader's scheduler: binds each source to one live worker, preferring the worker that
//! ran the source last, then a worker with no source (one source per worker, as in TiDB DM,
//! while there are enough workers), then the worker with the fewest sources: with fewer workers
//! than sources (8 sources on 3 workers, or a cluster that lost a worker) every source still
//! runs, where TiDB DM leaves the extra ones waiting. It unbinds a source whose worker lost its
//! lease. A worker stops writing before its lease can run out (see `fence`), so by
//! the time the lease key is gone the source is free to move.

use crate::error::Result;
use crate::meta::{keys, MetaStore};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// The keys a scheduling pass reads: a change elsewhere (above all the status every subtask
/// publishes each second: 50 tasks made the idle leader spend a fifth of a core scheduling,
/// `bench/cluster.sh`) changes nothing it would decide.
const INPUTS: &[&str] = &[
    keys::ALIVE_WORKER,
    keys::SOURCE,
    keys::BOUND,
    keys::MOVING,
    keys::LAST_BOUND,
];

/// Runs until aborted (the master stops leading).
pub async fn run(store: Arc<dyn MetaStore>) {
    let mut changes = store.watch(keys::ROOT).await.ok();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        crate::meta::next_change_under(&mut changes, &mut tick, INPUTS).await;
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
    // Sources per live worker.
    let mut load: BTreeMap<String, usize> = alive.iter().map(|w| (w.clone(), 0)).collect();
    for w in bound.values() {
        *load.entry(w.clone()).or_default() += 1;
    }
    let moving = names(store, keys::MOVING).await?;
    for source in sources
        .iter()
        .filter(|s| !bound.contains_key(*s) && !moving.contains(*s))
    {
        let last = store
            .get(&keys::last_bound(source))
            .await?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        let Some(worker) = pick_worker(&load, last.as_deref()) else {
            tracing::debug!(source = %source, "no live worker for the source");
            break;
        };
        if store
            .compare_and_put(&keys::bound(source), None, worker.clone().into_bytes())
            .await?
        {
            *load.entry(worker.clone()).or_default() += 1;
            store
                .put(&keys::last_bound(source), worker.clone().into_bytes())
                .await?;
            tracing::info!(source = %source, worker = %worker, "source bound");
        }
    }
    Ok(())
}

/// The worker for an unbound source: the one it ran on last if that one runs no source, else
/// one with the fewest sources (the last one among them, else the first by name); `None`
/// without live workers.
fn pick_worker(load: &BTreeMap<String, usize>, last: Option<&str>) -> Option<String> {
    let least = *load.values().min()?;
    match last {
        Some(l) if load.get(l) == Some(&least) => Some(l.to_string()),
        _ => load
            .iter()
            .find(|(_, n)| **n == least)
            .map(|(w, _)| w.clone()),
    }
}

#[cfg(test)]
mod pick_tests {
    use super::*;

    fn load(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|(w, n)| (w.to_string(), *n)).collect()
    }

    #[test]
    fn a_source_goes_back_to_its_worker_else_to_the_least_busy() {
        assert_eq!(pick_worker(&load(&[]), Some("w1")), None);
        let idle = load(&[("w1", 0), ("w2", 0)]);
        assert_eq!(pick_worker(&idle, Some("w2")).as_deref(), Some("w2"));
        assert_eq!(pick_worker(&idle, None).as_deref(), Some("w1"));
        // Its last worker is busier than another: the source goes where there is room.
        let busy = load(&[("w1", 1), ("w2", 0)]);
        assert_eq!(pick_worker(&busy, Some("w1")).as_deref(), Some("w2"));
        // Fewer workers than sources: shared, evenly.
        let full = load(&[("w1", 2), ("w2", 1), ("w3", 1)]);
        assert_eq!(pick_worker(&full, Some("w3")).as_deref(), Some("w3"));
        assert_eq!(pick_worker(&full, Some("w1")).as_deref(), Some("w2"));
    }
}
