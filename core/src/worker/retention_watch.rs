//! The worker's watch over the binlog its subtasks need from their sources
//! (`upstream/retention.rs` says why). Every few minutes, for each subtask of its sources,
//! running or paused: the file a restart reads (the checkpoint in the target, or the relay
//! log's end when the source keeps one), and how long the source keeps it. Status shows it
//! with a warning when the file goes soon or is gone; `/metrics` has it for alerts.

use crate::checkpoint::MetaTables;
use crate::config::{SourceConfig, TaskConfig};
use crate::error::{DbRole, Result};
use crate::position::Position;
use crate::status::BinlogRetention;
use crate::upstream::relay::Relay;
use crate::upstream::retention::assess;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the sources are asked (a test shortens it with the `retention-every` failpoint).
const EVERY: Duration = Duration::from_secs(300);

type Key = (String, String);

/// A subtask of this worker, running or paused.
#[derive(Clone)]
pub struct Watched {
    pub task: TaskConfig,
    pub source: SourceConfig,
    pub relay: Option<Arc<Relay>>,
}

/// What the watch found, per subtask; the worker reads it into each status.
#[derive(Default)]
pub struct RetentionBoard {
    watched: Mutex<BTreeMap<Key, Watched>>,
    reports: Mutex<BTreeMap<Key, BinlogRetention>>,
    /// Subtasks whose report changed since the worker last published them.
    changed: Mutex<Vec<Key>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RetentionBoard {
    /// The worker's subtasks now (each reconcile).
    pub fn watch(&self, subtasks: BTreeMap<Key, Watched>) {
        lock(&self.reports).retain(|k, _| subtasks.contains_key(k));
        *lock(&self.watched) = subtasks;
    }

    pub fn report(&self, key: &Key) -> Option<BinlogRetention> {
        lock(&self.reports).get(key).cloned()
    }

    /// The subtasks whose report changed since the last call.
    pub fn take_changed(&self) -> Vec<Key> {
        std::mem::take(&mut *lock(&self.changed))
    }

    /// Records a report; true when it changed.
    fn set(&self, key: Key, report: Option<BinlogRetention>) -> bool {
        let mut reports = lock(&self.reports);
        if reports.get(&key) == report.as_ref() {
            return false;
        }
        if let Some(r) = &report {
            if let Some(w) = r.warning(false, None) {
                tracing::warn!(task = %key.0, source = %key.1, "{w}");
            }
        }
        match report {
            Some(r) => reports.insert(key.clone(), r),
            None => reports.remove(&key),
        };
        lock(&self.changed).push(key);
        true
    }
}

/// Runs until dropped; tells `changed` when a report changed.
pub async fn run(board: Arc<RetentionBoard>, changed: Arc<tokio::sync::Notify>) {
    let every = crate::failpoint::millis("retention-every")
        .map(Duration::from_millis)
        .unwrap_or(EVERY);
    loop {
        tokio::time::sleep(every).await;
        let watched: Vec<(Key, Watched)> = lock(&board.watched)
            .iter()
            .map(|(k, w)| (k.clone(), w.clone()))
            .collect();
        let mut any = false;
        for (key, w) in watched {
            // A source of binlog files has no server that purges; a task without an
            // incremental phase reads no binlog.
            if w.source.binlog_dir.is_some() || !w.task.task_mode.has_incremental() {
                continue;
            }
            let report = match check(&w).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(task = %key.0, source = %key.1, error = %e, "binlog retention: cannot check");
                    continue;
                }
            };
            any |= board.set(key, report);
        }
        if any {
            changed.notify_one();
        }
    }
}

/// The report of one subtask; `None` while it needs nothing from the source yet.
async fn check(w: &Watched) -> Result<Option<BinlogRetention>> {
    let needed = match w.relay.as_ref() {
        // The relay reads the source for every task of it; the tasks read the relay.
        Some(relay) => relay
            .written()
            .map(|binlog| Position { binlog, gtid: None }),
        None => {
            let target = &w.task.target_database;
            let mut tgt = crate::db::connect(target, DbRole::Target).await?;
            let meta = MetaTables::new(&w.task.meta_schema, &w.task.name);
            meta.needed_binlog(&mut tgt, &target.addr(), &w.source.source_id)
                .await?
        }
    };
    let Some(needed) = needed else {
        return Ok(None);
    };
    let mut src = crate::db::connect(&w.source.from, DbRole::Source).await?;
    let addr = w.source.from.addr();
    let flavor = crate::upstream::source_flavor(&w.source, &mut src).await?;
    assess(&mut src, flavor, &addr, &needed, w.source.enable_gtid)
        .await
        .map(Some)
}
