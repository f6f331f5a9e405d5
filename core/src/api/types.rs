//! What the API's routes take and answer. The master's handlers and `dm ctl` use these same
//! types, so a field renamed on one side is renamed on the other (or does not compile).
//! Views of engine state (subtask status, relay status, findings, verify reports) are the
//! engine's own types, re-exported here.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::check::{Finding, Level};
pub use crate::error::ErrorReport;
pub use crate::hooks::ShardId;
pub use crate::shard::ShardDdl;
pub use crate::status::{Phase, Stage, SubtaskStatus};
pub use crate::table::Table as TrackedTable;
pub use crate::upstream::relay::{PurgeReport, RelayStage, RelayStatus};
pub use crate::verify::{RowDiff, TableReport};

/// A config file sent by `dm ctl` (create-source, start-task, update-task, check-task): its
/// name (for messages and for watching it) and text.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileBody {
    pub file: String,
    pub content: String,
    #[serde(default)]
    pub remove_meta: bool,
    /// `start-task --skip-precheck`: start even when `check-task` finds failures.
    #[serde(default)]
    pub skip_precheck: bool,
    /// `start-task --start-time`: replicate from the first transaction at or after this time.
    #[serde(default)]
    pub start_time: Option<String>,
    /// Plugin modules of a task file (name -> base64), read where `dm ctl` runs.
    #[serde(default)]
    pub plugins: BTreeMap<String, String>,
}

/// A source as `operate-source show` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceView {
    pub source_id: String,
    pub address: String,
    pub user: String,
    pub enable_gtid: bool,
    pub worker: Option<String>,
    #[serde(default)]
    pub enable_relay: bool,
    /// What the worker reports of the source's relay log.
    #[serde(default)]
    pub relay: Option<RelayStatus>,
    /// What dm did with TiDB DM's fields of the source file (create-source only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A task and its subtasks, as `query-status` shows them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskView {
    pub name: String,
    pub task_mode: String,
    pub stage: Stage,
    pub subtasks: Vec<SubtaskStatus>,
    /// Why the last edit of the task file was not applied (the task runs as before), and
    /// what start-task and update-task warn about.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `pause-task` / `resume-task`, of the whole task or, with `sources`, of those sources'
/// subtasks alone (TiDB DM's `-s`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StageBody {
    #[serde(default)]
    pub sources: Vec<String>,
}

/// `throttle`: hold a task's subtasks, let them go, or limit their rows per second; takes
/// effect at once, without a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum ThrottleRequest {
    /// Hold: no rows are written until `off` (positions and sessions are kept).
    On,
    /// No hold, and the task file's `max-rows-per-second` again.
    Off,
    /// This many rows per second at most (0: no limit), in place of the task file's.
    Rate { rows_per_second: u64 },
}

/// `resync`: copy these tables (`schema.table`) again while the task runs; of every source
/// of the task whose rules take them, or of `sources` only.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ResyncBody {
    pub tables: Vec<String>,
    #[serde(default)]
    pub sources: Vec<String>,
}

/// Query of `stop-task`: comma-separated sources whose subtasks stop (TiDB DM's
/// `stop-task -s`); the task goes on with the others.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StopQuery {
    #[serde(default)]
    pub sources: Option<String>,
}

/// What stopping a task or a source answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stopped {
    /// The task or source.
    pub stopped: String,
    /// The sources whose subtasks stopped, when not the whole task did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

/// `verify`: source and target compared chunk by chunk; `fix` repairs the target.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyBody {
    #[serde(default)]
    pub fix: bool,
}

/// The transaction a binlog operation acts on: named by hand (`-b file:pos`, the end of its
/// transaction) or, when `position` is empty, the one each paused subtask stopped at.
/// `source` may be left out when the task has one source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BinlogAt {
    #[serde(default)]
    pub position: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

/// `binlog replace|inject`: statements instead of / before that transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BinlogStatements {
    pub sql: Vec<String>,
    #[serde(flatten)]
    pub at: BinlogAt,
}

/// A recorded binlog operation (`binlog list`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BinlogOperator {
    pub source: String,
    pub position: String,
    /// skip, replace or inject.
    pub action: String,
    pub sql: Vec<String>,
}

/// Query of `binlog-schema list`: the source (may be left out when the task has one).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SchemaQuery {
    #[serde(default)]
    pub source: Option<String>,
}

/// `binlog-schema update|delete`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SchemaChange {
    #[serde(default)]
    pub source: Option<String>,
    pub table: String,
    /// `CREATE TABLE` of the table as the binlog has it now; `None` (and no `from`) deletes it.
    #[serde(default)]
    pub create: Option<String>,
    /// TiDB DM's `--from-source` / `--from-target`: take the table's definition as the source
    /// (or the target, under its routed name) has it now.
    #[serde(default)]
    pub from: Option<String>,
}

/// `validation start`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ValidationStart {
    #[serde(default)]
    pub interval_secs: Option<u64>,
}

/// One stored file (`get-config`, `config export`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigFile {
    /// `task` or `source`.
    pub kind: String,
    pub name: String,
    /// The file, YAML.
    pub content: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MasterView {
    pub name: String,
    pub addr: String,
    pub alive: bool,
    pub leader: bool,
    /// Serves its API beyond loopback without TLS and authentication (`insecure: true`).
    #[serde(default)]
    pub insecure: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerView {
    pub name: String,
    /// `bound` (runs a source), `free` (alive, idle) or `offline`.
    pub stage: String,
    /// The first of `sources` (TiDB DM's workers run one source).
    pub source: Option<String>,
    /// Every source the worker runs: several when workers are fewer than sources.
    #[serde(default)]
    pub sources: Vec<String>,
}

/// `list-member`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Members {
    pub leader: Option<String>,
    #[serde(default)]
    pub masters: Vec<MasterView>,
    #[serde(default)]
    pub workers: Vec<WorkerView>,
}

/// What `offline-member` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Offline {
    pub offline: String,
}

/// `transfer-source`: the worker to move the source to; also its answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transfer {
    #[serde(default)]
    pub source: String,
    pub worker: String,
}

/// What `operate-leader` answers: the master evicted, or the evictions cancelled.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LeaderAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<Vec<String>>,
}

/// A relay operation's options.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RelayBody {
    /// `purge`: remove the files before this one (only those no task needs).
    #[serde(default)]
    pub filename: Option<String>,
}

/// What a relay operation answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayAnswer {
    pub source_id: String,
    pub enable_relay: bool,
    pub stage: Option<RelayStage>,
    /// For `purge`: what the worker removed and kept.
    pub purge: Option<PurgeReport>,
}

/// A merged table's shard DDL lock (`shard-ddl-lock`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockReport {
    pub task: String,
    pub target: String,
    pub mode: String,
    /// Shards that sent a DDL and wait: who sent what.
    pub arrived: Vec<ShardDdl>,
    /// Shards the lock still waits for.
    pub waiting_for: Vec<ShardId>,
    /// Shards released whose rows held since their DDL are not all applied yet.
    pub catching_up: Vec<ShardId>,
    pub executed: Vec<Vec<String>>,
    pub deferred: Vec<(Vec<String>, Vec<ShardId>)>,
    pub conflict: Option<String>,
}

/// Query of `shard-ddl-lock`: only this task's locks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LockQuery {
    #[serde(default)]
    pub task: Option<String>,
}

/// `shard-ddl-lock unlock`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnlockBody {
    pub task: String,
    pub target: String,
    /// `exec`: run the DDL the shards sent (most of them) once; `skip`: it was done by hand.
    pub action: String,
    /// TiDB DM's `-o`: with `exec`, run the DDL this source sent, in its statement's session.
    #[serde(default)]
    pub owner: Option<String>,
    /// TiDB DM's `-f`: with `exec`, release the lock even when the DDL fails on the target
    /// (the error is in the answer; fix the target by hand).
    #[serde(default)]
    pub force_remove: bool,
}

/// What `unlock` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unlocked {
    pub task: String,
    pub target: String,
    pub action: String,
    /// The shards released.
    pub released: Vec<String>,
    /// The DDL's error on the target (with `force_remove`).
    #[serde(default)]
    pub exec_error: Option<String>,
}

/// What `/api/v1/cluster/etcd` answers: how a worker reaches etcd.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtcdDiscovery {
    /// Client URLs of every member.
    pub endpoints: Vec<String>,
    /// PEM of the CA of the members' certificates, when they serve TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// The members require a client certificate signed by that CA.
    #[serde(default)]
    pub client_cert_required: bool,
    /// etcd user, when etcd has authentication enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Its password, encrypted with the deployment's key (workers have the same key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// The last validation run of a task.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ValidationStatus {
    pub task: String,
    pub interval_secs: u64,
    pub runs: u64,
    pub last_finished: Option<u64>,
    /// Source and target had the same rows in every compared table.
    pub equal: Option<bool>,
    pub tables: usize,
    pub rows: u64,
    pub differences: usize,
    /// The first differences: (source table, difference with its fix).
    pub diffs: Vec<(String, RowDiff)>,
    pub error: Option<ErrorReport>,
}

/// A task at one moment, as `GET /api/v1/history` lists it: its largest subtask lag and the
/// rows per second of all its subtasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistorySample {
    /// Unix time.
    pub at: u64,
    pub lag_seconds: Option<u64>,
    pub rows_per_sec: f64,
}
