//! The relay log: the worker copies its source's binlog to local files (same names, same
//! offsets, valid binlog files that `mariadb-binlog` reads) and the source's subtasks read
//! their events from there. Subtasks go on while the source is down, the source may purge
//! its binlog once the relay has it, and one dump serves every task of the source.
//!
//! - `writer`: one replica connection per source, appending whole events and publishing how
//!   far the files are whole (a `watch` channel). A torn tail after a crash is cut off and
//!   fetched again.
//! - `reader`: a subtask's event source, tailing the files up to the published end.
//! - purging removes files older than the oldest position any task of the source may read
//!   again (`needed.json`, kept while a task is paused and across restarts), never the file
//!   being written.

pub mod files;
mod reader;
mod writer;

pub use files::free_bytes;
pub use reader::RelayReader;

use crate::abort_on_drop::AbortOnDrop;
use crate::config::{Flavor, SourceConfig};
use crate::error::{Error, ErrorReport};
use crate::position::BinlogPos;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::{watch, Notify};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayStage {
    /// Empty relay: it starts at the first position a subtask asks for.
    Waiting,
    Running,
    /// `pause-relay`: no new events; subtasks read what is there.
    Paused,
}

/// What `operate-source show`, the API and `/metrics` show of a relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayStatus {
    pub source_id: String,
    pub worker: String,
    pub stage: RelayStage,
    pub dir: String,
    /// End of the last whole event on disk.
    pub position: Option<String>,
    pub first_file: Option<String>,
    pub files: usize,
    pub bytes: u64,
    /// Free bytes on the relay's file system (`check-task` compares it with remain-space).
    #[serde(default)]
    pub free_bytes: Option<u64>,
    /// The connection to the source failed; the relay retries by itself.
    pub last_error: Option<ErrorReport>,
    /// Per task, the oldest position it may read again: purging keeps that file.
    pub needed: BTreeMap<String, String>,
    pub last_purge: Option<PurgeReport>,
    pub updated_at: u64,
}

/// The outcome of one purge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurgeReport {
    /// The request it answers (`purge-relay`), 0 for an automatic purge.
    pub id: u64,
    pub removed: Vec<String>,
    /// Why the oldest remaining file stays.
    pub kept: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// A `purge-relay` request, stored for the worker of the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurgeRequest {
    pub id: u64,
    /// Remove the files before this one (still only those no task needs).
    pub filename: Option<String>,
}

#[derive(Default)]
struct State {
    stage: Option<RelayStage>,
    last_error: Option<ErrorReport>,
    last_purge: Option<PurgeReport>,
    flavor: Option<Flavor>,
}

/// The relay of one source on this worker.
pub struct Relay {
    pub source_id: String,
    pub dir: PathBuf,
    /// End of the last whole event flushed to the files.
    written: watch::Sender<Option<BinlogPos>>,
    /// The oldest position subtasks asked for while the relay was empty.
    wanted: Mutex<Option<BinlogPos>>,
    wanted_set: Notify,
    needed: Mutex<BTreeMap<String, BinlogPos>>,
    /// `needed.json` was there but unreadable: which files tasks need is unknown, so
    /// purging removes nothing.
    needed_unknown: bool,
    paused: watch::Sender<bool>,
    state: Mutex<State>,
}

/// A running relay: the writer stops when this is dropped.
pub struct RelayRun {
    pub relay: Arc<Relay>,
    pub cfg: SourceConfig,
    _writer: AbortOnDrop<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the relay's writer. One that panics (a defect) would leave the relay's readers
/// waiting for events nobody writes and its status as it was: the panic is reported as the
/// relay's last error and the writer starts again after a pause (it resumes after the last
/// whole event in the files).
async fn supervise(relay: Arc<Relay>, cfg: SourceConfig) {
    let mut pause = Duration::from_secs(1);
    loop {
        // Aborted with the supervisor (the relay stopped), the writer goes too.
        let mut run = AbortOnDrop(tokio::spawn(writer::run(relay.clone(), cfg.clone())));
        match (&mut run.0).await {
            Ok(()) => return,
            Err(e) if e.is_cancelled() => return,
            Err(e) => {
                let message = match e.into_panic().downcast::<String>() {
                    Ok(m) => *m,
                    Err(p) => p
                        .downcast::<&str>()
                        .map(|m| m.to_string())
                        .unwrap_or_else(|_| "a panic".into()),
                };
                tracing::error!(source = %relay.source_id, %message, "relay writer panicked: starting it again in {pause:?}");
                relay.set_error(Some(&Error::Relay {
                    source_id: relay.source_id.clone(),
                    message: format!("the relay writer panicked ({message}); started again"),
                    retryable: true,
                }));
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

impl Relay {
    /// Starts relaying `cfg`'s binlog into `<base>/<relay-dir>/<source-id>` (an absolute
    /// relay-dir is used as is).
    pub fn start(cfg: SourceConfig, base: &Path) -> RelayRun {
        let dir = base.join(&cfg.relay_dir).join(&cfg.source_id);
        let (needed, needed_unknown) = match files::load_needed(&dir) {
            Ok(n) => (n, false),
            Err(e) => {
                tracing::warn!(source = %cfg.source_id, dir = %dir.display(), error = %e,
                    "the relay's needed positions cannot be read: no relay file is purged until dm restarts with a readable file");
                (BTreeMap::new(), true)
            }
        };
        let relay = Arc::new(Relay {
            source_id: cfg.source_id.clone(),
            needed: Mutex::new(needed),
            needed_unknown,
            dir,
            written: watch::channel(None).0,
            wanted: Mutex::new(None),
            wanted_set: Notify::new(),
            paused: watch::channel(false).0,
            state: Mutex::new(State {
                flavor: cfg.flavor,
                ..Default::default()
            }),
        });
        let writer = AbortOnDrop(tokio::spawn(supervise(relay.clone(), cfg.clone())));
        RelayRun {
            relay,
            cfg,
            _writer: writer,
        }
    }

    /// A subtask will read from `pos`: an empty relay starts at its file.
    pub fn want(&self, pos: &BinlogPos) {
        let mut w = lock(&self.wanted);
        if w.as_ref().is_none_or(|w| pos < w) {
            *w = Some(pos.clone());
        }
        self.wanted_set.notify_one();
    }

    /// `task` may read again from `pos`: purging keeps its file (saved when the file changes).
    pub fn set_needed(&self, task: &str, pos: &BinlogPos) {
        let mut n = lock(&self.needed);
        let new_file = n.get(task).is_none_or(|p| p.name != pos.name);
        n.insert(task.to_string(), pos.clone());
        if new_file {
            self.save_needed(&n);
        }
    }

    /// Forgets the tasks of this source that no longer exist.
    pub fn retain_tasks(&self, tasks: &BTreeSet<String>) {
        let mut n = lock(&self.needed);
        let before = n.len();
        n.retain(|t, _| tasks.contains(t));
        if n.len() != before {
            self.save_needed(&n);
        }
    }

    fn save_needed(&self, n: &BTreeMap<String, BinlogPos>) {
        if self.needed_unknown {
            // Keep the unreadable file for a person to look at; nothing is purged anyway.
            return;
        }
        if let Err(e) = crate::durable::create_private_dir(&self.dir)
            .and_then(|_| files::save_needed(&self.dir, n))
        {
            tracing::warn!(source = %self.source_id, error = %e, "cannot save the relay's needed positions");
        }
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused
            .send_if_modified(|p| std::mem::replace(p, paused) != paused);
    }

    /// The end of the last whole event on disk: what it next reads from the source.
    pub fn written(&self) -> Option<BinlogPos> {
        self.written.borrow().clone()
    }

    /// The `purge-relay` request last carried out.
    pub fn last_purge_id(&self) -> u64 {
        lock(&self.state).last_purge.as_ref().map_or(0, |p| p.id)
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// The source's flavor once the writer has talked to it.
    pub fn flavor(&self) -> Option<Flavor> {
        lock(&self.state).flavor
    }

    /// The oldest relay file, if any.
    fn first_file(&self) -> Option<String> {
        files::list(&self.dir).ok()?.into_iter().next()
    }

    /// Whether reading from `pos` can be served: the relay holds its file or will start at
    /// it. A position older than the relay's first file is read from the source instead.
    pub fn covers(&self, pos: &BinlogPos) -> bool {
        match self.first_file() {
            None => true,
            Some(first) => files::index(&first) <= files::index(&pos.name),
        }
    }

    fn set_stage(&self, stage: RelayStage) {
        lock(&self.state).stage = Some(stage);
    }

    fn set_error(&self, e: Option<&Error>) {
        lock(&self.state).last_error = e.map(Error::report);
    }

    fn set_flavor(&self, f: Flavor) {
        lock(&self.state).flavor = Some(f);
    }

    fn publish(&self, pos: BinlogPos) {
        self.written.send_replace(Some(pos));
    }

    /// Removes relay files no task needs: those before `before` (all unneeded ones when
    /// `None`), never the file being written.
    pub fn purge(&self, id: u64, before: Option<&str>) -> PurgeReport {
        let mut report = PurgeReport {
            id,
            removed: vec![],
            kept: None,
            error: None,
        };
        let names = match files::list(&self.dir) {
            Ok(n) => n,
            Err(e) => {
                report.error = Some(format!("cannot list {}: {e}", self.dir.display()));
                return report;
            }
        };
        let Some(active) = names.last().cloned() else {
            return report;
        };
        if self.needed_unknown {
            report.kept = Some(format!(
                "{} was unreadable at start: which files tasks need is unknown, every file is kept",
                self.dir.join(files::NEEDED).display()
            ));
            lock(&self.state).last_purge = Some(report.clone());
            return report;
        }
        // The first file that stays, and why.
        let mut limits: Vec<(Option<u64>, String)> =
            vec![(files::index(&active), format!("{active} is being written"))];
        for (task, pos) in lock(&self.needed).iter() {
            limits.push((
                files::index(&pos.name),
                format!("task `{task}` may read from {pos}"),
            ));
        }
        if let Some(b) = before {
            limits.push((files::index(b), format!("--filename {b}")));
        }
        let (limit, why) = limits
            .into_iter()
            .min_by_key(|(i, _)| *i)
            .expect("the active file is a limit");
        for name in names {
            if files::index(&name) >= limit {
                break;
            }
            match std::fs::remove_file(self.dir.join(&name)) {
                Ok(()) => report.removed.push(name),
                Err(e) => {
                    report.error = Some(format!("cannot remove {name}: {e}"));
                    break;
                }
            }
        }
        report.kept = Some(why);
        if !report.removed.is_empty() {
            tracing::info!(source = %self.source_id, removed = ?report.removed, kept = ?report.kept, "relay log purged");
        }
        lock(&self.state).last_purge = Some(report.clone());
        report
    }

    /// The automatic purge: files older than `expires` hours, or every unneeded file when
    /// the disk has less than `remain-space` GiB free.
    fn purge_by_policy(&self, cfg: &crate::config::PurgeConfig) {
        if self.purge_if_low_space(cfg.remain_space) {
            return;
        }
        if cfg.expires == 0 {
            return;
        }
        // An `expires` reaching before the epoch keeps every file.
        let age = Duration::from_secs(cfg.expires.saturating_mul(3600));
        let Some(cutoff) = SystemTime::now().checked_sub(age) else {
            return;
        };
        let Ok(names) = files::list(&self.dir) else {
            return;
        };
        // The first file young enough to stay bounds the purge.
        let young = names.iter().find(|n| {
            std::fs::metadata(self.dir.join(n))
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > cutoff)
        });
        if let Some(young) = young.cloned() {
            if Some(&young) != names.first() {
                self.purge(0, Some(&young));
            }
        }
    }

    /// Removes every file no task needs when the disk has less than `remain_space` GiB free;
    /// true when it did. Checked at each tick of the purge interval, and also at each new
    /// relay file and after the writer failed (a full disk fails it): a disk that fills up
    /// between two ticks (an hour by default) is not left full until the next one.
    fn purge_if_low_space(&self, remain_space: u64) -> bool {
        let low_space = files::free_bytes(&self.dir)
            .is_ok_and(|free| free < remain_space.saturating_mul(1 << 30));
        if low_space {
            tracing::warn!(source = %self.source_id, dir = %self.dir.display(), "less than {remain_space} GiB free: purging the relay log");
            self.purge(0, None);
        }
        low_space
    }

    pub fn status(&self, worker: &str) -> RelayStatus {
        let names = files::list(&self.dir).unwrap_or_default();
        let bytes = names
            .iter()
            .filter_map(|n| std::fs::metadata(self.dir.join(n)).ok())
            .map(|m| m.len())
            .sum();
        let st = lock(&self.state);
        let stage = if self.is_paused() {
            RelayStage::Paused
        } else {
            st.stage.unwrap_or(RelayStage::Waiting)
        };
        RelayStatus {
            source_id: self.source_id.clone(),
            worker: worker.to_string(),
            stage,
            dir: self.dir.display().to_string(),
            position: self.written.borrow().as_ref().map(|p| p.to_string()),
            first_file: names.first().cloned(),
            files: names.len(),
            bytes,
            free_bytes: files::free_bytes(&self.dir).ok(),
            last_error: st.last_error.clone(),
            needed: lock(&self.needed)
                .iter()
                .map(|(t, p)| (t.clone(), p.to_string()))
                .collect(),
            last_purge: st.last_purge.clone(),
            updated_at: crate::status::now_secs(),
        }
    }
}
