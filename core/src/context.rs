//! What every phase of one subtask (a task on one source) shares: where rows come from and
//! where they go, the rules they pass on the way, where dm keeps its records in the target,
//! and where progress is shown. Built once per run of the subtask; the full phase, its chunk
//! copiers, the load phase and the incremental phase all read it.

use crate::checkpoint::MetaTables;
use crate::config::{DbConfig, Flavor, SourceConfig};
use crate::fence::Fence;
use crate::rules::{Router, RowRules, TableFilter};
use crate::status::Progress;
use crate::table::TableName;
use std::collections::BTreeSet;
use std::sync::Arc;

pub struct SubtaskContext {
    /// The task's name.
    pub task: String,
    pub source: SourceConfig,
    pub flavor: Flavor,
    pub target: DbConfig,
    /// dm's tables in the target (checkpoints, chunks, high-water marks).
    pub meta: MetaTables,
    pub progress: Arc<Progress>,
    /// Closed when the worker's lease runs out: no more writes to the target.
    pub fence: Fence,
    /// The tables the task takes from this source.
    pub filter: TableFilter,
    /// Where each table's rows go.
    pub router: Router,
    /// Expression filters, then plugins: what both phases run rows through.
    pub rows: RowRules,
    /// `foreign-key-checks`: tables linked by foreign keys are copied in one snapshot and
    /// applied in order with the checks on (`sync/linked.rs`).
    pub foreign_keys: bool,
}

impl SubtaskContext {
    /// The context of another stream of the subtask that takes only `tables` (tables
    /// joining the running task): its records in the target under `source_id`, a progress of
    /// its own under the subtask's throttle, the same rules.
    pub fn beside(&self, source_id: String, tables: BTreeSet<TableName>) -> SubtaskContext {
        SubtaskContext {
            task: self.task.clone(),
            source: SourceConfig {
                source_id,
                ..self.source.clone()
            },
            flavor: self.flavor,
            target: self.target.clone(),
            meta: self.meta.clone(),
            progress: Arc::new(self.progress.beside()),
            fence: self.fence.clone(),
            filter: self.filter.clone().only(tables),
            router: self.router.clone(),
            rows: self.rows.clone(),
            foreign_keys: self.foreign_keys,
        }
    }
}
