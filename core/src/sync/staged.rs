//! Rows staged for the row filter plugins: while transactions are held back (more wait to be
//! read), their rows wait too, and each plugin is called once per table for all of them
//! instead of once per transaction: a call costs more than a few rows in it. Staged rows are
//! routed before anything else is sent, in the order they were read.

use super::{decode_rows, Dispatcher, Held, RowsEvent};
use crate::error::Result;
use crate::hooks::HookRow;
use crate::position::BinlogPos;
use crate::sync::plan::TablePlan;
use std::sync::Arc;

/// A run of rows events of one table in a transaction, not decoded yet.
pub(super) struct StagedRun {
    pub plan: Arc<TablePlan>,
    pub events: Vec<RowsEvent>,
    /// Where its transaction ends.
    pub end: BinlogPos,
    pub safe: bool,
}

/// The staged runs, in binlog order, and how many rows they hold (counted as they come:
/// whether to hold is asked for every transaction).
#[derive(Default)]
pub(super) struct Staged {
    runs: Vec<StagedRun>,
    rows: usize,
}

impl Staged {
    pub fn push(&mut self, run: StagedRun) {
        self.rows += run.events.iter().map(|e| e.rows.len()).sum::<usize>();
        self.runs.push(run);
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    fn take(&mut self) -> Vec<StagedRun> {
        self.rows = 0;
        std::mem::take(&mut self.runs)
    }
}

impl Dispatcher<'_> {
    /// Decodes the staged runs, filters them with one call of each plugin per table, and
    /// routes what is kept in binlog order.
    pub(super) async fn route_staged(&mut self) -> Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let mut staged = self.staged.take();
        let mut decoded = Vec::with_capacity(staged.len());
        for run in &mut staged {
            decoded.push(decode_rows(
                &run.plan,
                std::mem::take(&mut run.events),
                &run.end,
            )?);
        }
        let mut kept: Vec<Option<Vec<HookRow>>> = staged.iter().map(|_| None).collect();
        for first in 0..staged.len() {
            if kept[first].is_some() {
                continue;
            }
            let table = &staged[first].plan.table;
            let same: Vec<usize> = (first..staged.len())
                .filter(|&i| kept[i].is_none() && staged[i].plan.table.name == table.name)
                .collect();
            let runs: Vec<_> = same
                .iter()
                .map(|&i| (std::mem::take(&mut decoded[i]), &staged[i].end))
                .collect();
            let out = self.inc.ctx.rows.run_batched(table, runs)?;
            for (i, rows) in same.into_iter().zip(out) {
                kept[i] = Some(rows);
            }
        }
        let last = staged.last().map(|r| r.end.clone()).unwrap_or_default();
        let ends: Vec<&BinlogPos> = staged.iter().map(|r| &r.end).collect();
        let txns_from = transactions_from(&ends);
        for ((run, rows), txns) in staged.into_iter().zip(kept).zip(txns_from) {
            // Routing may have had to send what was held (keys linked to two workers): the
            // rest are held from here.
            self.held.get_or_insert_with(|| Held {
                from: run.end.clone(),
                to: last.clone(),
                txns,
            });
            self.route(&run.plan, rows.unwrap_or_default(), &run.end, run.safe)
                .await?;
        }
        Ok(())
    }
}

/// For each run (by where its transaction ends), how many transactions the runs from it on
/// belong to (runs of one transaction follow each other): what is held should the runs
/// before it have been sent.
fn transactions_from(ends: &[&BinlogPos]) -> Vec<usize> {
    let mut counts = vec![0; ends.len()];
    let mut txns = 0;
    for i in (0..ends.len()).rev() {
        if ends.get(i + 1).is_none_or(|next| *next != ends[i]) {
            txns += 1;
        }
        counts[i] = txns;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_are_counted_from_each_run_on() {
        let at = |pos| BinlogPos {
            name: "mysql-bin.000001".into(),
            pos,
        };
        let (a, b, c) = (at(100), at(200), at(300));
        assert_eq!(transactions_from(&[&a, &a, &b, &c, &c]), [3, 3, 2, 1, 1]);
        assert_eq!(transactions_from(&[&a]), [1]);
        assert!(transactions_from(&[]).is_empty());
    }
}
