//! What a worker publishes about each subtask (one task on one source), and the live counters
//! it is built from. `query-status` shows it.

use crate::error::ErrorReport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Waiting to start, or retrying after a transient error.
    #[default]
    New,
    /// No worker runs the source (cluster): starts when a worker is free.
    Waiting,
    Running,
    Paused,
    /// `task-mode: full` ended.
    Finished,
    /// Not making progress: retrying after an error, or stopped without a pause (a panic, a
    /// lost apply lock) and about to be restarted from its checkpoint; `last_error` says why.
    Error,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    #[default]
    Full,
    Incremental,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubtaskStatus {
    pub task: String,
    pub source_id: String,
    pub worker: String,
    pub stage: Stage,
    pub phase: Phase,
    pub tables_total: u64,
    pub tables_done: u64,
    /// Rows copied by the full phase.
    pub rows_loaded: u64,
    /// Bytes of SQL written by the full phase.
    #[serde(default)]
    pub bytes_loaded: u64,
    /// Rows the full phase expects to copy (the source's estimate).
    #[serde(default)]
    pub rows_estimated: u64,
    /// Seconds the full phase still needs at the current rate.
    #[serde(default)]
    pub eta_seconds: Option<u64>,
    /// Tables of the full phase (or joining the running task) not copied yet, with their
    /// chunks and rows: those being copied first, at most `LISTED_TABLES`.
    #[serde(default)]
    pub tables: Vec<TableProgress>,
    /// Row changes applied by the incremental phase.
    pub rows_applied: u64,
    pub txns_applied: u64,
    /// Batches of row changes the incremental phase passed to its row filter plugins (a
    /// batch holds the rows of one or more transactions of a table).
    #[serde(default)]
    pub row_filter_batches: u64,
    /// Row changes and source transactions applied per second, over the last publish period.
    #[serde(default)]
    pub rows_per_sec: f64,
    #[serde(default)]
    pub txns_per_sec: f64,
    /// Source transactions and change batches read but not yet applied.
    #[serde(default)]
    pub queue_depth: u64,
    /// Last position whose changes are applied (and checkpointed at the next flush).
    pub position: String,
    /// Seconds between the source's commit of the last applied change and now; 0 when idle.
    pub lag_seconds: Option<u64>,
    /// The safe mode is on (replaying idempotently after a restart).
    pub safe_mode: bool,
    pub last_error: Option<ErrorReport>,
    /// Unix time of this report.
    pub updated_at: u64,
    /// Problems that do not stop the subtask (a plugin's new version that did not load).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// TiDB DM's query-status fields, for scripts written against it. `synced`: caught up
    /// (incremental, running, the source quiet, nothing read and not applied).
    #[serde(default)]
    pub synced: bool,
    /// The source's position as far as dm knows it: its last binlog position when synced.
    #[serde(default, rename = "masterBinlog")]
    pub master_binlog: Option<String>,
    /// `position`, under DM's name.
    #[serde(default, rename = "syncerBinlog")]
    pub syncer_binlog: String,
    /// Shard DDLs of this source the merged tables wait at (`shard-ddl-lock` has the rest).
    #[serde(default, rename = "blockingDDLs")]
    pub blocking_ddls: Vec<String>,
    /// The merged tables whose lock waits for this source's DDL or others'.
    #[serde(default, rename = "unresolvedGroups")]
    pub unresolved_groups: Vec<String>,
    /// gh-ost/pt-osc runs under way on the source: statements waiting for their swap.
    #[serde(default)]
    pub online_ddl: Vec<OnlineDdlStatus>,
    /// Why the subtask waits (`dm ctl throttle on`, the source's load), or its rows/s limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<String>,
    /// It waits now: held by `dm ctl throttle on` or by the load check.
    #[serde(default)]
    pub throttled: bool,
    /// How long the source keeps the binlog file a restart of this subtask reads (the
    /// worker's watch, `worker/retention_watch.rs`); `None` until first checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_retention: Option<BinlogRetention>,
}

/// Where the binlog file a subtask resumes from stands on its source
/// (`upstream/retention.rs` finds it out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinlogRetention {
    /// The oldest binlog file of the source a restart of the subtask reads: its checkpoint's
    /// (or the relay log's end, when the source has one).
    pub needed: String,
    /// The oldest file the source still has.
    pub oldest: String,
    /// The source no longer has `needed`: the subtask cannot resume from its checkpoint.
    pub purged: bool,
    /// Seconds until the source's expiry may remove `needed` (0: at its next rotation);
    /// `None`: it will not (the file being written, or the source has no expiry).
    pub purge_in_seconds: Option<u64>,
    /// The source's expiry, in seconds; 0: none.
    pub expire_seconds: u64,
}

/// A purge closer than this makes a running subtask warn (a paused one always does).
pub const SOON_SECS: u64 = 6 * 3600;

impl BinlogRetention {
    /// What a user should be told, if anything. `paused`: the subtask waits for a person (the
    /// clock runs against it); `full_eta`: the seconds its full phase still needs, whose
    /// incremental phase starts at `needed`.
    pub fn warning(&self, paused: bool, full_eta: Option<u64>) -> Option<String> {
        if self.purged {
            return Some(format!(
                "the source no longer has binlog file {} this subtask resumes from (its oldest is \
                 {}): it cannot resume; start the task again with a new full copy (stop-task, then \
                 start-task --remove-meta), or restore the file on the source",
                self.needed, self.oldest
            ));
        }
        let left = self.purge_in_seconds?;
        let when = if left == 0 {
            "at its next binlog rotation".to_string()
        } else {
            format!("in {}", human(left))
        };
        let fix = "raise binlog_expire_logs_seconds on the source, or enable-relay for it";
        if let Some(eta) = full_eta.filter(|eta| *eta > left) {
            return Some(format!(
                "the full phase needs about {} more, but the source may purge binlog file {} \
                 (where the incremental phase starts) {when}: {fix} now",
                human(eta),
                self.needed
            ));
        }
        if paused {
            return Some(format!(
                "paused: the source may purge binlog file {}, which this subtask resumes from, \
                 {when}; resume the task before, or {fix}",
                self.needed
            ));
        }
        (left <= SOON_SECS).then(|| {
            format!(
                "the source may purge binlog file {}, which this subtask resumes from, {when}: \
                 it must catch up before, or {fix}",
                self.needed
            )
        })
    }
}

/// `3d 4h`, `5h 12m`, `7m`.
pub fn human(secs: u64) -> String {
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{}m", m.max(1)),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// An online schema change in progress on one table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OnlineDdlStatus {
    /// The real table (`schema.table`).
    pub table: String,
    pub shadow: String,
    pub tool: String,
    /// Where its shadow table was created (or first seen).
    pub since: String,
    /// Run on the shadow table so far, written for the real table.
    pub statements: Vec<String>,
}

/// Full-phase progress of one table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableProgress {
    pub table: String,
    pub chunks_total: u64,
    pub chunks_done: u64,
    pub rows: u64,
    pub bytes: u64,
    pub rows_estimated: u64,
    /// Secondary indexes being built after the table's data (`mydumpers.defer-indexes`);
    /// the table is copied once they are.
    #[serde(default)]
    pub indexes_building: u64,
}

/// At most this many tables are listed in a subtask's status. The status is published every
/// second, and a task over 10,000 tables listed them all: over a megabyte each time, beyond
/// etcd's request limit. `tables_total`/`tables_done` and the row totals count every table.
pub const LISTED_TABLES: usize = 40;

/// The full phase's tables as a status shows them: those not finished (being copied first,
/// then the biggest waiting), at most `LISTED_TABLES`; the totals are of every table.
#[derive(Debug, Clone, Default)]
pub struct TablesShown {
    pub listed: Vec<TableProgress>,
    pub rows_estimated: u64,
    pub bytes: u64,
}

/// Counters a running subtask updates and its status publisher reads.
#[derive(Debug, Default)]
pub struct Progress {
    /// How fast the subtask may go and whether it waits (status shows it).
    pub throttle: Arc<crate::throttle::Throttle>,
    pub tables_total: AtomicU64,
    pub tables_done: AtomicU64,
    pub rows_loaded: AtomicU64,
    pub rows_applied: AtomicU64,
    pub txns_applied: AtomicU64,
    /// Calls of the row filter plugins in the incremental phase (`RowRules` counts them).
    pub row_filter_batches: Arc<AtomicU64>,
    pub last_event_ts: AtomicU64,
    /// Source transactions and row changes read but not yet applied.
    pub queue_depth: AtomicU64,
    pub idle: std::sync::atomic::AtomicBool,
    pub safe_mode: std::sync::atomic::AtomicBool,
    pub position: Mutex<String>,
    pub phase: Mutex<Option<Phase>>,
    tables: Mutex<BTreeMap<String, TableProgress>>,
    rates: Mutex<RateSample>,
    /// The subtask's plugins, for their reload errors.
    pub plugins: Mutex<crate::hooks::RowFilterChain>,
    /// Online schema changes in progress, as of the last checkpoint.
    pub online_ddl: Mutex<Vec<OnlineDdlStatus>>,
    /// The progress of tables joining the running task (`sync/join.rs`), while they do.
    pub joining: Mutex<Option<Arc<Progress>>>,
    /// Told when the subtask catches up, so the status saying so goes out at once rather
    /// than at the next periodic publish (up to a second later).
    announce: Option<Arc<tokio::sync::Notify>>,
    /// When `announce` was last told (micros since the epoch): at most once a second, so
    /// a trickle of writes, each caught up at once, does not publish status for each.
    announced_at: AtomicU64,
}

/// The counters when rates were last worked out, and the rates then.
#[derive(Debug, Default)]
struct RateSample {
    at: Option<std::time::Instant>,
    rows: u64,
    txns: u64,
    rows_per_sec: f64,
    txns_per_sec: f64,
}

impl Progress {
    /// Reload errors of the subtask's plugins.
    pub fn plugin_warnings(&self) -> Vec<String> {
        self.plugins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(n, f)| {
                f.reload_error().map(|e| {
                    format!(
                        "plugin `{n}`: its new version did not load, the previous one runs: {e}"
                    )
                })
            })
            .collect()
    }
}

pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Progress {
    pub fn set_position(&self, p: impl ToString) {
        *self.position.lock().unwrap_or_else(|e| e.into_inner()) = p.to_string();
    }

    /// A subtask progress that tells `announce` when it catches up.
    pub fn announcing_to(announce: Arc<tokio::sync::Notify>) -> Progress {
        Progress {
            announce: Some(announce),
            ..Progress::default()
        }
    }

    /// Whether the incremental phase has applied everything the source has; catching up is
    /// announced (see `announce`).
    pub fn set_idle(&self, idle: bool) {
        let was = self.idle.swap(idle, Ordering::Relaxed);
        let Some(announce) = self.announce.as_ref().filter(|_| idle && !was) else {
            return;
        };
        let now = now_micros();
        let last = self.announced_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1_000_000
            && self
                .announced_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            announce.notify_one();
        }
    }

    pub fn set_phase(&self, p: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }

    pub fn phase(&self) -> Phase {
        self.phase
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(Phase::Full)
    }

    pub fn position(&self) -> String {
        self.position
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts (or restarts) a table's progress.
    pub fn set_table(&self, p: TableProgress) {
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        t.insert(p.table.clone(), p);
    }

    pub fn add_table_rows(&self, table: &str, rows: u64, bytes: u64) {
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = t.get_mut(table) {
            p.rows += rows;
            p.bytes += bytes;
        }
    }

    pub fn sub_table_rows(&self, table: &str, rows: u64, bytes: u64) {
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = t.get_mut(table) {
            p.rows = p.rows.saturating_sub(rows);
            p.bytes = p.bytes.saturating_sub(bytes);
        }
    }

    pub fn chunk_done(&self, table: &str) {
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = t.get_mut(table) {
            p.chunks_done += 1;
        }
    }

    /// Sets how many secondary indexes of `table` are being built after its data (0: done).
    pub fn set_indexes_building(&self, table: &str, indexes: u64) {
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        // After a restart a table whose chunks were all done has no progress yet.
        let p = t.entry(table.to_string()).or_insert_with(|| TableProgress {
            table: table.to_string(),
            ..TableProgress::default()
        });
        p.indexes_building = indexes;
    }

    /// The tables a status lists (see `TablesShown`), and the totals of all.
    pub fn tables(&self) -> TablesShown {
        let t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let mut unfinished: Vec<&TableProgress> = t
            .values()
            .filter(|p| p.chunks_done < p.chunks_total || p.indexes_building > 0)
            .collect();
        // Being copied first (indexes being built, chunks done or rows in), then the biggest
        // still waiting.
        unfinished.sort_by_key(|p| {
            (
                p.indexes_building == 0 && p.chunks_done == 0 && p.rows == 0,
                std::cmp::Reverse(p.rows_estimated),
            )
        });
        TablesShown {
            listed: unfinished
                .into_iter()
                .take(LISTED_TABLES)
                .cloned()
                .collect(),
            rows_estimated: t.values().map(|p| p.rows_estimated).sum(),
            bytes: t.values().map(|p| p.bytes).sum(),
        }
    }

    /// The copy of the tables joining the running task; `None` when none is.
    pub fn joining_tables(&self) -> Option<TablesShown> {
        let joining = self
            .joining
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        joining.map(|j| j.tables())
    }

    /// A progress of its own for another stream of the subtask, under the same throttle.
    pub fn beside(&self) -> Progress {
        Progress {
            throttle: self.throttle.clone(),
            ..Progress::default()
        }
    }

    /// (rows/s, transactions/s) applied since the previous call at least a second ago.
    pub fn rates(&self) -> (f64, f64) {
        let mut r = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        let rows =
            self.rows_applied.load(Ordering::Relaxed) + self.rows_loaded.load(Ordering::Relaxed);
        let txns = self.txns_applied.load(Ordering::Relaxed);
        match r.at {
            Some(at) if now.duration_since(at).as_secs_f64() < 1.0 => {}
            Some(at) => {
                let secs = now.duration_since(at).as_secs_f64();
                // Rows loaded go down when a chunk is copied again.
                r.rows_per_sec = rows.saturating_sub(r.rows) as f64 / secs;
                r.txns_per_sec = txns.saturating_sub(r.txns) as f64 / secs;
                (r.at, r.rows, r.txns) = (Some(now), rows, txns);
            }
            None => (r.at, r.rows, r.txns) = (Some(now), rows, txns),
        }
        (r.rows_per_sec, r.txns_per_sec)
    }

    pub fn lag_seconds(&self) -> Option<u64> {
        if self.phase() != Phase::Incremental {
            return None;
        }
        if self.idle.load(Ordering::Relaxed) {
            return Some(0);
        }
        match self.last_event_ts.load(Ordering::Relaxed) {
            0 => None,
            ts => Some(now_secs().saturating_sub(ts)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn catching_up_is_announced_at_once_but_at_most_once_a_second() {
        let announce = Arc::new(tokio::sync::Notify::new());
        let p = Progress::announcing_to(announce.clone());
        let told = || async {
            tokio::time::timeout(std::time::Duration::from_millis(50), announce.notified())
                .await
                .is_ok()
        };
        p.set_idle(false);
        assert!(!told().await, "busy is not announced");
        p.set_idle(true);
        assert!(told().await, "caught up is announced");
        p.set_idle(true);
        assert!(!told().await, "still caught up is not announced again");
        p.set_idle(false);
        p.set_idle(true);
        assert!(
            !told().await,
            "caught up again within a second waits for the next publish"
        );
        assert!(p.idle.load(Ordering::Relaxed));
    }

    #[test]
    fn a_status_lists_unfinished_tables_being_copied_first_and_counts_all() {
        let p = Progress::default();
        for i in 0..100u64 {
            p.set_table(TableProgress {
                table: format!("t{i:03}"),
                chunks_total: 2,
                chunks_done: if i < 30 { 2 } else { 0 },
                rows: 0,
                bytes: 10,
                rows_estimated: i,
                indexes_building: 0,
            });
        }
        p.chunk_done("t050");
        let shown = p.tables();
        assert_eq!(shown.listed.len(), LISTED_TABLES);
        assert_eq!(shown.listed[0].table, "t050");
        assert_eq!(shown.listed[1].table, "t099");
        assert!(shown.listed.iter().all(|t| t.chunks_done < t.chunks_total));
        assert_eq!(shown.rows_estimated, (0..100).sum::<u64>());
        assert_eq!(shown.bytes, 1000);
        // A table whose chunks are all done is listed again while its indexes are built,
        // among those being copied; a table the restarted process had no progress of too.
        p.set_indexes_building("t005", 2);
        p.set_indexes_building("gone-before", 1);
        let listed: Vec<String> = p.tables().listed.into_iter().map(|t| t.table).collect();
        assert_eq!(listed[..3], ["t050", "t005", "gone-before"]);
        p.set_indexes_building("t005", 0);
        assert!(!p.tables().listed.iter().any(|t| t.table == "t005"));
    }
}

#[cfg(test)]
mod retention_tests {
    use super::*;

    fn at(purge_in: Option<u64>) -> BinlogRetention {
        BinlogRetention {
            needed: "bin.000007".into(),
            oldest: "bin.000003".into(),
            purged: false,
            purge_in_seconds: purge_in,
            expire_seconds: 86400,
        }
    }

    #[test]
    fn warns_when_the_needed_file_goes_soon_or_is_gone() {
        // Safe for long: a running subtask says nothing, a paused one says when.
        assert_eq!(at(Some(3 * 86400)).warning(false, None), None);
        let paused = at(Some(3 * 86400 + 4 * 3600)).warning(true, None).unwrap();
        assert!(
            paused.contains("bin.000007") && paused.contains("in 3d 4h"),
            "{paused}"
        );
        // Never purged: nothing to say, paused or not.
        assert_eq!(at(None).warning(true, Some(1 << 40)), None);
        let soon = at(Some(2 * 3600 + 5 * 60)).warning(false, None).unwrap();
        assert!(
            soon.contains("in 2h 5m") && soon.contains("catch up"),
            "{soon}"
        );
        let due = at(Some(0)).warning(false, None).unwrap();
        assert!(due.contains("at its next binlog rotation"), "{due}");
        // A full phase that ends after the purge.
        let full = at(Some(86400)).warning(false, Some(2 * 86400)).unwrap();
        assert!(full.contains("the full phase needs about 2d 0h"), "{full}");
        assert_eq!(at(Some(86400)).warning(false, Some(3600)), None);
        let gone = BinlogRetention {
            purged: true,
            ..at(None)
        }
        .warning(false, None)
        .unwrap();
        assert!(
            gone.contains("no longer has binlog file bin.000007") && gone.contains("bin.000003")
        );
    }
}
