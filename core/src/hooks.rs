//! Hook traits of the engine: decisions users may want to make in code. The rule-based
//! behaviours configured in the task file are their native implementations; WASM plugins
//! implement the same traits.

use serde::{Deserialize, Serialize};

/// One shard table of a merged target table: `source` is the source id, `table` the shard's
/// `schema.table` there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardId {
    pub source: String,
    pub table: String,
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.source, self.table)
    }
}

/// A shard's DDL waiting for a decision: the statements as they would run on the target
/// table (renamed), and where the shard's binlog has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDdl {
    pub shard: ShardId,
    pub ddls: Vec<String>,
    pub position: String,
}

/// What a policy sees of one merged target table.
#[derive(Debug, Clone)]
pub struct LockView<'a> {
    pub task: &'a str,
    /// `schema.table` in the target.
    pub target: &'a str,
    /// Every shard of the target table, over all sources of the task.
    pub shards: &'a [ShardId],
    /// DDLs sent by shards and not decided yet, in arrival order.
    pub pending: &'a [PendingDdl],
    /// DDLs run on the target so far.
    pub executed: &'a [Vec<String>],
    /// DDLs released early and run once every shard in the set has sent them.
    pub deferred: &'a [(Vec<String>, Vec<ShardId>)],
    /// The target table's columns now: (name, type as `COLUMN_TYPE` gives it, lower case).
    pub target_columns: &'a [(String, String)],
}

/// What the coordinator does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing until more shards send their DDL.
    Wait,
    /// Run `ddls` on the target, then let `release` go on.
    Exec {
        ddls: Vec<String>,
        release: Vec<ShardId>,
    },
    /// Let `release` go on without running anything (already done downstream).
    Skip { release: Vec<ShardId> },
    /// Let `release` go on now; run `ddls` once every shard has sent them.
    Defer {
        ddls: Vec<String>,
        release: Vec<ShardId>,
    },
    /// The DDLs cannot be reconciled: the shards named in the message stop until a user
    /// resolves the lock.
    Conflict {
        shards: Vec<ShardId>,
        message: String,
    },
}

/// Decides how DDLs of shards merged into one target table reach the target.
pub trait ShardDdlPolicy: Send + Sync {
    fn name(&self) -> &str;
    fn decide(&self, lock: &LockView<'_>) -> Decision;
}
