//! The row pipeline both phases share: a table's row changes pass the task's expression
//! filters, then its row filter plugins in the task file's order, before they are routed and
//! written. The full phase hands it snapshot rows as inserts, the incremental phase the
//! changes of one rows event; what it keeps is the same for the same row either way.

use super::ExpressionFilters;
use crate::error::{Error, Result};
use crate::hooks::{apply_verdicts, call_row_filter, run_row_filters, HookRow, RowFilterChain};
use crate::hooks::{RowFilter, RowVerdict};
use crate::position::BinlogPos;
use crate::table::{Table, TableName};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
    /// Batches of binlog row changes handed to the plugins (rows some expression filter
    /// dropped all of are no batch).
    batches: Arc<AtomicU64>,
}

impl RowRules {
    pub fn new(expressions: ExpressionFilters, plugins: RowFilterChain) -> Self {
        RowRules {
            expressions,
            plugins,
            batches: Arc::default(),
        }
    }

    /// Counts the batches of binlog row changes handed to the plugins in `batches`.
    pub fn counting_batches(self, batches: Arc<AtomicU64>) -> Self {
        RowRules { batches, ..self }
    }

    /// No rule looks at `table`'s rows: they may go straight to the target.
    pub fn passes_all(&self, table: &TableName) -> bool {
        self.plugins.is_empty() && !self.expressions.has(table)
    }

    /// Whether plugins look at rows: then calls are worth gathering (`run_batched`).
    pub fn has_plugins(&self) -> bool {
        !self.plugins.is_empty()
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
        rows: Vec<HookRow>,
        origin: RowOrigin<'_>,
    ) -> Result<Vec<HookRow>> {
        let rows = self.run_expressions(table, rows, origin)?;
        if self.plugins.is_empty() || rows.is_empty() {
            return Ok(rows);
        }
        if let RowOrigin::Binlog(_) = origin {
            self.batches.fetch_add(1, Ordering::Relaxed);
        }
        run_row_filters(&self.plugins, table, rows, &|| origin.place(&table.name))
    }

    /// `run` for the rows of several source transactions of one table (`runs`: each one's
    /// rows and where it ends), with one call of each plugin for all of them: a call costs
    /// more than the rows in it. What each keeps is what `run` keeps of it alone, and an
    /// error names the transaction whose rows caused it.
    pub fn run_batched(
        &self,
        table: &Table,
        runs: Vec<(Vec<HookRow>, &BinlogPos)>,
    ) -> Result<Vec<Vec<HookRow>>> {
        if let [(_, end)] = runs[..] {
            let rows = runs.into_iter().next().map(|(r, _)| r).unwrap_or_default();
            return Ok(vec![self.run(table, rows, RowOrigin::Binlog(end))?]);
        }
        let ends: Vec<&BinlogPos> = runs.iter().map(|(_, end)| *end).collect();
        // Each row's run, kept beside the rows through every plugin.
        let mut owner = Vec::new();
        let mut rows = Vec::new();
        for (i, (run, end)) in runs.into_iter().enumerate() {
            let kept = self.run_expressions(table, run, RowOrigin::Binlog(end))?;
            owner.extend(std::iter::repeat_n(i, kept.len()));
            rows.extend(kept);
        }
        if !self.plugins.is_empty() && !rows.is_empty() {
            self.batches.fetch_add(1, Ordering::Relaxed);
        }
        for (name, f) in &self.plugins {
            if rows.is_empty() {
                break;
            }
            // One call for all; should it fail, one per transaction, so that the error is
            // that of the transaction whose rows cause it (the position the task pauses at,
            // what `binlog skip` skips) and one too big for a deadline alone is no error.
            let verdicts = match call_row_filter(name, f.as_ref(), table, &rows, &String::new) {
                Ok(v) => v,
                Err(_) => call_per_run(name, f.as_ref(), table, &rows, &owner, &ends)?,
            };
            if verdicts.contains(&RowVerdict::Drop) {
                owner = owner
                    .into_iter()
                    .zip(&verdicts)
                    .filter(|(_, v)| **v != RowVerdict::Drop)
                    .map(|(i, _)| i)
                    .collect();
            }
            rows = apply_verdicts(rows, verdicts);
        }
        let mut out: Vec<Vec<HookRow>> = ends.iter().map(|_| Vec::new()).collect();
        for (i, row) in owner.into_iter().zip(rows) {
            out[i].push(row);
        }
        Ok(out)
    }

    /// The expression filters' part of `run`.
    fn run_expressions(
        &self,
        table: &Table,
        rows: Vec<HookRow>,
        origin: RowOrigin<'_>,
    ) -> Result<Vec<HookRow>> {
        if !self.expressions.has(&table.name) {
            return Ok(rows);
        }
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
        Ok(kept)
    }
}

/// The verdicts of `rows` (in runs of the same `owner`, in order) from one call per run.
fn call_per_run(
    name: &str,
    f: &dyn RowFilter,
    table: &Table,
    rows: &[HookRow],
    owner: &[usize],
    ends: &[&BinlogPos],
) -> Result<Vec<RowVerdict>> {
    let mut verdicts = Vec::with_capacity(rows.len());
    let mut start = 0;
    while start < rows.len() {
        let run = owner[start];
        let len = owner[start..].iter().take_while(|o| **o == run).count();
        let end = ends[run];
        let part = &rows[start..start + len];
        verdicts.extend(call_row_filter(name, f, table, part, &|| end.to_string())?);
        start += len;
    }
    Ok(verdicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ExpressionFilter;
    use crate::datum::Datum;
    use crate::hooks::PluginError;
    use crate::table::RowOp;

    /// Keeps every row; counts its calls.
    #[derive(Default)]
    struct KeepAll(AtomicU64);

    impl RowFilter for KeepAll {
        fn name(&self) -> &str {
            "keep-all"
        }
        fn filter(&self, _: &Table, rows: &[HookRow]) -> Result<Vec<RowVerdict>, PluginError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(vec![RowVerdict::Keep; rows.len()])
        }
    }

    /// A batch is counted when the plugins get rows: not when an expression filter left none.
    #[test]
    fn batches_are_counted_when_the_plugins_are_called() {
        let filter = ExpressionFilter {
            schema: "d".into(),
            table: "t".into(),
            insert_value_expr: Some("c > 100".into()),
            update_old_value_expr: None,
            update_new_value_expr: None,
            delete_value_expr: None,
        };
        let plugin = Arc::new(KeepAll::default());
        let batches = Arc::new(AtomicU64::new(0));
        let rules = RowRules::new(
            ExpressionFilters::new([&filter]),
            vec![("keep-all".into(), plugin.clone() as Arc<dyn RowFilter>)],
        )
        .counting_batches(batches.clone());
        let table = Table::of_nullable_ints(TableName::new("d", "t"), &["c"]);
        let insert = |c: i64| HookRow {
            op: RowOp::Insert,
            before: None,
            after: Some(vec![Datum::Int(c)]),
        };
        let (a, b) = (
            BinlogPos {
                name: "mysql-bin.000001".into(),
                pos: 100,
            },
            BinlogPos {
                name: "mysql-bin.000001".into(),
                pos: 200,
            },
        );
        let count = || {
            (
                batches.load(Ordering::Relaxed),
                plugin.0.load(Ordering::Relaxed),
            )
        };
        // Every row dropped by the expression filter: no call, no batch.
        let kept = rules
            .run_batched(
                &table,
                vec![(vec![insert(101)], &a), (vec![insert(102)], &b)],
            )
            .unwrap();
        assert!(kept.iter().all(Vec::is_empty));
        rules
            .run(&table, vec![insert(103)], RowOrigin::Binlog(&a))
            .unwrap();
        assert_eq!(count(), (0, 0));
        // Rows left for the plugin: one batch per call.
        let kept = rules
            .run_batched(&table, vec![(vec![insert(1)], &a), (vec![insert(2)], &b)])
            .unwrap();
        assert_eq!(kept.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1]);
        rules
            .run(&table, vec![insert(3)], RowOrigin::Binlog(&a))
            .unwrap();
        assert_eq!(count(), (2, 2));
        // The full phase's calls are not the incremental phase's batches.
        rules
            .run(&table, vec![insert(4)], RowOrigin::Snapshot)
            .unwrap();
        assert_eq!(count(), (2, 3));
    }
}
