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

/// One row change handed to a row filter: images by column of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct HookRow {
    pub op: crate::table::RowOp,
    pub before: Option<Vec<crate::datum::Datum>>,
    pub after: Option<Vec<crate::datum::Datum>>,
}

/// What a row filter says of one row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowVerdict {
    Keep,
    Drop,
    /// Keep it with these columns (by index) set in both images.
    Set(Vec<(usize, crate::datum::Datum)>),
}

pub use crate::error::PluginError;

/// A row filter called once per batch of rows of one table, in the full phase (inserts) and
/// the incremental phase, before routing and causality.
pub trait RowFilter: Send + Sync {
    fn name(&self) -> &str;
    /// One verdict per row, or why the filter failed (a trap, a timeout, bad output).
    fn filter(
        &self,
        table: &crate::table::Table,
        rows: &[HookRow],
    ) -> Result<Vec<RowVerdict>, PluginError>;
    /// Called between source transactions (and chunks): a new version of the filter, if one
    /// was loaded, takes over here, never within a transaction.
    fn at_boundary(&self) {}
    /// Why the newest version of the filter could not be loaded (the previous one runs).
    fn reload_error(&self) -> Option<PluginError> {
        None
    }
}

/// Applies the verdicts to `rows`: dropped rows go, `Set` columns change in both images.
pub fn apply_verdicts(rows: Vec<HookRow>, verdicts: Vec<RowVerdict>) -> Vec<HookRow> {
    // The usual answer keeps every row as it is: no new vector then.
    if verdicts.iter().all(|v| *v == RowVerdict::Keep) {
        return rows;
    }
    rows.into_iter()
        .zip(verdicts)
        .filter_map(|(mut r, v)| match v {
            RowVerdict::Keep => Some(r),
            RowVerdict::Drop => None,
            RowVerdict::Set(cols) => {
                for image in [r.before.as_mut(), r.after.as_mut()].into_iter().flatten() {
                    for (i, d) in &cols {
                        if let Some(slot) = image.get_mut(*i) {
                            *slot = d.clone();
                        }
                    }
                }
                Some(r)
            }
        })
        .collect()
}

pub use crate::config::PluginSpec;

/// The hooks a loaded plugin implements.
#[derive(Clone, Default)]
pub struct LoadedPlugin {
    pub row_filter: Option<std::sync::Arc<dyn RowFilter>>,
    pub table_router: Option<std::sync::Arc<dyn TableRouter>>,
    pub shard_ddl_policy: Option<std::sync::Arc<dyn ShardDdlPolicy>>,
}

/// Decides where a table's rows go, once per table: `None` keeps the table's own name (and
/// lets the task's `routes` decide).
pub trait TableRouter: Send + Sync {
    fn name(&self) -> &str;
    fn route(
        &self,
        table: &crate::table::TableName,
    ) -> Result<Option<crate::table::TableName>, PluginError>;
}

/// Loads plugins. The `dm` binary hands the WASM host (dm-plugins) to the role it starts,
/// so that dm-core knows nothing of wasmtime; a process without one refuses tasks that name
/// plugins.
pub trait PluginHost: Send + Sync {
    /// `bytes`: the module as the task's metadata (or the file at `spec.path`) has it.
    fn load(
        &self,
        name: &str,
        spec: &PluginSpec,
        bytes: &[u8],
    ) -> Result<LoadedPlugin, PluginError>;
}

/// The plugin host of a process, when it has one.
pub type Host = Option<std::sync::Arc<dyn PluginHost>>;

/// The row filters of a subtask, in the task file's order: (plugin name, filter).
pub type RowFilterChain = Vec<(String, std::sync::Arc<dyn RowFilter>)>;

/// Runs `rows` through every filter of `chain`; errors name the plugin, table and position
/// (`position` is written out for an error only, not for every rows event).
pub fn run_row_filters(
    chain: &RowFilterChain,
    table: &crate::table::Table,
    mut rows: Vec<HookRow>,
    position: &dyn Fn() -> String,
) -> crate::Result<Vec<HookRow>> {
    for (name, f) in chain {
        if rows.is_empty() {
            break;
        }
        let verdicts = call_row_filter(name, f.as_ref(), table, &rows, position)?;
        rows = apply_verdicts(rows, verdicts);
    }
    Ok(rows)
}

/// One call of the row filter `name`: a verdict per row, or the error naming the plugin, the
/// table and `position`.
pub fn call_row_filter(
    name: &str,
    f: &dyn RowFilter,
    table: &crate::table::Table,
    rows: &[HookRow],
    position: &dyn Fn() -> String,
) -> crate::Result<Vec<RowVerdict>> {
    let err = |error: PluginError| crate::Error::Plugin {
        plugin: name.to_string(),
        hook: "row filter".into(),
        table: table.name.to_string(),
        position: position(),
        error: Box::new(error),
    };
    // Inline: a call is microseconds, and its deadline bounds it (block_in_place would
    // cost more than the call; measured in bench/incremental.sh).
    let verdicts = f.filter(table, rows).map_err(err)?;
    if verdicts.len() != rows.len() {
        return Err(err(PluginError::BadAnswer(format!(
            "answered {} verdicts for {} rows",
            verdicts.len(),
            rows.len()
        ))));
    }
    Ok(verdicts)
}

/// The hooks a subtask's plugins implement.
#[derive(Default)]
pub struct SubtaskPlugins {
    pub row_filters: RowFilterChain,
    /// The first table router among the plugins.
    pub router: Option<(String, std::sync::Arc<dyn TableRouter>)>,
}

impl std::fmt::Debug for dyn RowFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RowFilter({})", self.name())
    }
}
