//! The row pipeline both phases share: a table's row changes pass the task's expression
//! filters, then its row filter plugins in the task file's order, before they are routed and
//! written. The full phase hands it snapshot rows as inserts, the incremental phase the
//! changes of one rows event; what it keeps is the same for the same row either way.

use super::ExpressionFilters;
use crate::error::{Error, Result};
use crate::hooks::{run_row_filters, HookRow, RowFilterChain};
use crate::position::BinlogPos;
use crate::table::{Table, TableName};

/// Where rows in the pipeline come from; errors name it.
#[derive(Debug, Clone, Copy)]
pub enum RowOrigin<'a> {
    /// The full phase's copy of the table.
    Snapshot,
    /// The binlog transaction ending here.
    Binlog(&'a BinlogPos),
}

impl RowOrigin<'_> {
    /// The place an error reports: a binlog position, or the table's full phase.
    fn place(&self, table: &TableName) -> String {
        match self {
            RowOrigin::Snapshot => format!("the full phase of {table}"),
            RowOrigin::Binlog(end) => end.to_string(),
        }
    }
}

/// A subtask's row rules: expression filters, then plugins.
#[derive(Default, Clone)]
pub struct RowRules {
    expressions: ExpressionFilters,
    plugins: RowFilterChain,
}

impl RowRules {
    pub fn new(expressions: ExpressionFilters, plugins: RowFilterChain) -> Self {
        RowRules {
            expressions,
            plugins,
        }
    }

    /// No rule looks at `table`'s rows: they may go straight to the target.
    pub fn passes_all(&self, table: &TableName) -> bool {
        self.plugins.is_empty() && !self.expressions.has(table)
    }

    /// Called between source transactions (and chunks): a plugin reloaded since takes over
    /// here, never within one.
    pub fn at_boundary(&self) {
        for (_, f) in &self.plugins {
            f.at_boundary();
        }
    }

    /// The rows the rules keep, in order, with the columns plugins set.
    pub fn run(
        &self,
        table: &Table,
        mut rows: Vec<HookRow>,
        origin: RowOrigin<'_>,
    ) -> Result<Vec<HookRow>> {
        if self.expressions.has(&table.name) {
            let mut kept = Vec::with_capacity(rows.len());
            for row in rows {
                let drops = self
                    .expressions
                    .drops(table, row.op, row.before.as_deref(), row.after.as_deref())
                    .map_err(|message| Error::Filtered {
                        rule: "expression-filter".into(),
                        position: origin.place(&table.name),
                        message,
                    })?;
                if !drops {
                    kept.push(row);
                }
            }
            rows = kept;
        }
        if self.plugins.is_empty() || rows.is_empty() {
            return Ok(rows);
        }
        run_row_filters(&self.plugins, table, rows, &|| origin.place(&table.name))
    }
}
