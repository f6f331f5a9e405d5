//! The embedded store of `dm standalone`: a map kept in memory and written to one JSON file in
//! the data dir with each change (`durable::write_atomically`), so a restart, or a kill -9,
//! keeps every change that was acknowledged; a change that could not be written is taken
//! back from memory too. The data dir is locked: one process writes it.

use super::{MetaStore, WatchEvent};
use crate::error::{Error, Result};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::sync::mpsc;

pub struct EmbeddedStore {
    path: PathBuf,
    state: Mutex<State>,
    /// The data dir's lock, held while the store is open.
    _lock: std::fs::File,
}

#[derive(Default)]
struct State {
    map: BTreeMap<String, Vec<u8>>,
    watchers: Vec<(String, mpsc::Sender<WatchEvent>)>,
}

/// Keys that are rewritten often and describe the present only: not worth a disk write.
const VOLATILE_PREFIXES: &[&str] = &[super::keys::STATUS, super::keys::RELAY_STATUS];

fn volatile(key: &str) -> bool {
    VOLATILE_PREFIXES.iter().any(|p| key.starts_with(p))
}

impl EmbeddedStore {
    pub fn open(data_dir: &Path) -> Result<Self> {
        crate::durable::create_private_dir(data_dir)?;
        let lock = crate::durable::lock_dir(data_dir).map_err(Error::Meta)?;
        let path = data_dir.join("meta.json");
        let map: BTreeMap<String, String> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::Meta(format!("{}: corrupt metadata file: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        let map = map.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
        Ok(EmbeddedStore {
            path,
            state: Mutex::new(State {
                map,
                watchers: Vec::new(),
            }),
            _lock: lock,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, map: &BTreeMap<String, Vec<u8>>) -> Result<()> {
        let durable: BTreeMap<&String, String> = map
            .iter()
            .filter(|(k, _)| !volatile(k))
            .map(|(k, v)| (k, String::from_utf8_lossy(v).into_owned()))
            .collect();
        let bytes = serde_json::to_vec_pretty(&durable).map_err(|e| Error::Meta(e.to_string()))?;
        crate::durable::write_atomically(&self.path, &bytes)
            .map_err(|e| Error::Meta(format!("cannot write {}: {e}", self.path.display())))
    }

    /// Applies a change, persists it unless volatile, then tells the watchers.
    fn apply(&self, key: &str, value: Option<Vec<u8>>) -> Result<()> {
        self.apply_locked(&mut self.lock(), key, value)
    }

    fn apply_locked(&self, st: &mut State, key: &str, value: Option<Vec<u8>>) -> Result<()> {
        let old = match &value {
            Some(v) => st.map.insert(key.to_string(), v.clone()),
            None => st.map.remove(key),
        };
        // Watchers hear of every write, changed or not, as with etcd. (Dropping the events of
        // unchanged writes once made held rows of released shards go missing under load: it
        // changed the timing that exposed the shard catch-up bugs fixed since, in
        // `sync/shard.rs`.) Only the disk write is saved when nothing changed.
        if !volatile(key) && old != value {
            if let Err(e) = self.persist(&st.map) {
                match old {
                    Some(v) => st.map.insert(key.to_string(), v),
                    None => st.map.remove(key),
                };
                return Err(e);
            }
        }
        st.watchers.retain(|(prefix, tx)| {
            if !key.starts_with(prefix.as_str()) {
                return !tx.is_closed();
            }
            let ev = WatchEvent {
                key: key.to_string(),
                value: value.clone(),
            };
            // A watcher that lags behind misses nothing important: watchers re-read the
            // store on every event, so dropping an event on a full channel is safe.
            !matches!(tx.try_send(ev), Err(mpsc::error::TrySendError::Closed(_)))
        });
        Ok(())
    }
}

#[async_trait]
impl MetaStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().map.get(key).cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.apply(key, Some(value))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.apply(key, None)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self
            .lock()
            .map
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn compare_and_put(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Vec<u8>,
    ) -> Result<bool> {
        let mut st = self.lock();
        if st.map.get(key).map(|v| v.as_slice()) != expected {
            return Ok(false);
        }
        self.apply_locked(&mut st, key, Some(value))?;
        Ok(true)
    }

    async fn watch(&self, prefix: &str) -> Result<mpsc::Receiver<WatchEvent>> {
        let (tx, rx) = mpsc::channel(1024);
        self.lock().watchers.push((prefix.to_string(), tx));
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn survives_reopen_and_watches() {
        let dir = std::env::temp_dir().join(format!("dm-meta-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = EmbeddedStore::open(&dir).unwrap();
        let mut w = store.watch("/dm/task/").await.unwrap();
        store.put("/dm/task/a", b"1".to_vec()).await.unwrap();
        store.put("/dm/status/a/s", b"x".to_vec()).await.unwrap();
        assert!(store
            .compare_and_put("/dm/task/b", None, b"2".to_vec())
            .await
            .unwrap());
        assert!(!store
            .compare_and_put("/dm/task/b", None, b"3".to_vec())
            .await
            .unwrap());
        assert_eq!(w.recv().await.unwrap().key, "/dm/task/a");
        drop(store);
        let store = EmbeddedStore::open(&dir).unwrap();
        let all = store.list("/dm/task/").await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(store.get("/dm/status/a/s").await.unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Changes made at once through `update_json` all stay (none overwrites another).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_json_updates_all_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        crate::meta::put_json(store.as_ref(), "/dm/stage/t", &Vec::<u32>::new())
            .await
            .unwrap();
        let mut writers = Vec::new();
        for w in 0..4u32 {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..25u32 {
                    crate::meta::update_json(store.as_ref(), "/dm/stage/t", |v: &mut Vec<u32>| {
                        v.push(w * 100 + i);
                        Ok(())
                    })
                    .await
                    .unwrap()
                    .unwrap();
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        let v: Vec<u32> = crate::meta::get_json(store.as_ref(), "/dm/stage/t")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v.len(), 100, "{v:?}");
    }
}
