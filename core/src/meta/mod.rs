//! The metadata store: where the master keeps sources, tasks and their desired stages, and
//! where workers publish what they run. Master and worker roles talk only through it and the
//! HTTP API, in one process (standalone) as across processes (cluster, on etcd).
//!
//! The key layout is in `keys`.

mod embedded;
mod etcd;
pub mod keys;
pub mod plugins;

pub use embedded::EmbeddedStore;
pub use etcd::{EtcdAccess, EtcdStore};

use crate::error::{Error, Result};
use async_trait::async_trait;
use serde::{de::DeserializeOwned, Serialize};

/// A master or worker as registered in the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemberInfo {
    pub name: String,
    /// API address (masters); empty for workers.
    #[serde(default)]
    pub addr: String,
    /// etcd client URLs this master knows (masters only).
    #[serde(default)]
    pub etcd_endpoints: Vec<String>,
    /// Serves its API beyond loopback without TLS and authentication (`insecure: true`).
    #[serde(default)]
    pub insecure: bool,
}

use tokio::sync::mpsc;

/// A change seen by a watcher: the key and its new value (`None` when deleted).
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()>;
    async fn delete(&self, key: &str) -> Result<()>;
    /// Every key under `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;
    /// Writes `value` only if the key currently holds `expected` (`None`: absent).
    async fn compare_and_put(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Vec<u8>,
    ) -> Result<bool>;
    /// Changes under `prefix` from now on.
    async fn watch(&self, prefix: &str) -> Result<mpsc::Receiver<WatchEvent>>;

    /// A lease of `ttl` seconds: keys put under it vanish when it is not renewed in time.
    /// The embedded store lives in one process, so its leases never run out.
    async fn grant_lease(&self, _ttl: i64) -> Result<i64> {
        Ok(1)
    }
    /// Renews a lease, waiting at most `wait` for an answer; returns the seconds it has left
    /// (0: it is gone).
    async fn keep_alive(&self, _lease: i64, _wait: std::time::Duration) -> Result<i64> {
        Ok(i64::MAX)
    }
    async fn revoke_lease(&self, _lease: i64) -> Result<()> {
        Ok(())
    }
    /// Writes a key that lives as long as `lease`.
    async fn put_leased(&self, key: &str, value: Vec<u8>, _lease: i64) -> Result<()> {
        self.put(key, value).await
    }
    /// Creates a key that lives as long as `lease`, if the key is absent.
    async fn create_leased(&self, key: &str, value: Vec<u8>, _lease: i64) -> Result<bool> {
        self.compare_and_put(key, None, value).await
    }
    /// Deletes `key` only if it holds `expected`.
    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool> {
        if self.get(key).await?.as_deref() == Some(expected) {
            self.delete(key).await?;
            return Ok(true);
        }
        Ok(false)
    }
}

/// The names under `prefix` (the keys without it), in key order.
pub async fn list_names(store: &dyn MetaStore, prefix: &str) -> Result<Vec<String>> {
    Ok(store
        .list(prefix)
        .await?
        .into_iter()
        .map(|(k, _)| k[prefix.len()..].to_string())
        .collect())
}

/// JSON helpers over any store.
pub async fn get_json<T: DeserializeOwned>(store: &dyn MetaStore, key: &str) -> Result<Option<T>> {
    match store.get(key).await? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| Error::Meta(format!("{key}: bad value: {e}"))),
    }
}

pub async fn put_json<T: Serialize>(store: &dyn MetaStore, key: &str, value: &T) -> Result<()> {
    let v = serde_json::to_vec(value).map_err(|e| Error::Meta(format!("{key}: {e}")))?;
    store.put(key, v).await
}

/// Changes the JSON value at `key` with `change`, written only if nobody wrote the key since
/// it was read (else read and changed again): two callers changing one value at once both
/// take effect. `change` sees the current value; `None` when the key holds none.
pub async fn update_json<T, F>(store: &dyn MetaStore, key: &str, mut change: F) -> Result<Option<T>>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(&mut T) -> Result<()>,
{
    loop {
        let Some(old) = store.get(key).await? else {
            return Ok(None);
        };
        let mut value: T = serde_json::from_slice(&old)
            .map_err(|e| Error::Meta(format!("{key}: bad value: {e}")))?;
        change(&mut value)?;
        let new = serde_json::to_vec(&value).map_err(|e| Error::Meta(format!("{key}: {e}")))?;
        if store.compare_and_put(key, Some(&old), new).await? {
            return Ok(Some(value));
        }
    }
}

pub async fn list_json<T: DeserializeOwned>(
    store: &dyn MetaStore,
    prefix: &str,
) -> Result<Vec<(String, T)>> {
    store
        .list(prefix)
        .await?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v)
                .map(|t| (k.clone(), t))
                .map_err(|e| Error::Meta(format!("{k}: bad value: {e}")))
        })
        .collect()
}

/// Waits for the next change under `prefix` (watched by `changes`), or `tick`, whichever comes
/// first: loops that reconcile on both (the watch may miss events while etcd fails over).
pub async fn next_change(
    changes: &mut Option<mpsc::Receiver<WatchEvent>>,
    tick: &mut tokio::time::Interval,
) {
    next_change_under(changes, tick, &[""]).await
}

/// As `next_change`, for a change to a key under one of `prefixes` only (or the tick).
pub async fn next_change_under(
    changes: &mut Option<mpsc::Receiver<WatchEvent>>,
    tick: &mut tokio::time::Interval,
    prefixes: &[&str],
) {
    let Some(rx) = changes.as_mut() else {
        tick.tick().await;
        return;
    };
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(e) if !prefixes.iter().any(|p| e.key.starts_with(p)) => continue,
                Some(_) => return,
                // A closed watch would answer at once, forever: the tick alone from now on.
                None => {
                    *changes = None;
                    return;
                }
            },
            _ = tick.tick() => return,
        }
    }
}
