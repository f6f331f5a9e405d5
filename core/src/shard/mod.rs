//! Shard DDL coordination: when shards of several sources are merged into one target table
//! (`routes` with patterns), their DDLs meet in a lock kept in the MetaStore. Subtasks send
//! their shard's DDL; the coordinator on the leading master asks the task's `ShardDdlPolicy`
//! what to do and releases shards; subtasks go on when released.
//!
//! Its keys are in `meta::keys::shard`.

pub mod coordinator;
pub mod policy;

use crate::hooks::ShardId;
use crate::position::Position;
use crate::upstream::StatementContext;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::meta::keys::shard::{
    ddl, ddl_prefix, done, done_prefix, lock, lock_prefix, member, member_prefix, PREFIX,
};

/// A source's shards per merged target table (`schema.table` both).
pub type Members = BTreeMap<String, Vec<String>>;

/// A shard's DDL as sent by its subtask (also the value of its `done` key once released).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardDdl {
    pub shard: ShardId,
    pub target: String,
    /// As they would run on the target table.
    pub ddls: Vec<String>,
    /// The statement the shard ran.
    pub original: String,
    /// End of the DDL's transaction: the shard's rows after it wait (pessimistic mode).
    pub position: Position,
    /// Arrival order.
    pub seq: u64,
    /// The session the shard's statement ran in: the target runs it in the same one.
    #[serde(default)]
    pub context: Option<StatementContext>,
}

impl ShardDdl {
    /// The session of the first shard that sent `ddls`.
    pub fn context_of<'a>(sent: &'a [ShardDdl], ddls: &[String]) -> Option<&'a StatementContext> {
        sent.iter()
            .filter(|d| ddls.iter().all(|x| d.ddls.contains(x)))
            .min_by_key(|d| d.seq)
            .and_then(|d| d.context.as_ref())
    }
}

/// The lock of one merged target table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LockState {
    pub executed: Vec<Vec<String>>,
    pub deferred: Vec<(Vec<String>, Vec<ShardId>)>,
    pub conflict: Option<Conflict>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub shards: Vec<ShardId>,
    pub message: String,
}

/// Removes every shard key of `task` (its shards, their DDLs and releases, its locks): a task
/// started over (`start-task --remove-meta`) must not inherit an earlier run's conflicts,
/// executed DDLs or releases. `stop-task` keeps them: a blocked shard's rows after its DDL
/// are only known from them when the task starts again from its checkpoint.
pub async fn remove_task_state(
    store: &dyn crate::meta::MetaStore,
    task: &str,
) -> crate::error::Result<()> {
    for prefix in [
        member_prefix(task),
        ddl_prefix(task),
        done_prefix(task),
        lock_prefix(task),
    ] {
        for (key, _) in store.list(&prefix).await? {
            store.delete(&key).await?;
        }
    }
    Ok(())
}
