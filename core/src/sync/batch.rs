//! What one apply worker collects for its next target transaction.
//!
//! Changes of tables that allow it (see `TablePlan::compactable`) are merged per row: only
//! the row's final state is written, as one `DELETE ... IN (...)` and multi-row
//! `INSERT`/`REPLACE` per table. The order between rows of such a table does not matter, since
//! only the identity key is unique. Other tables keep every change, in binlog order.

use super::plan::TablePlan;
use super::rows::RowBatch;
use crate::datum::Datum;
use crate::table::RowOp;
use std::collections::HashMap;
use std::sync::Arc;

/// A decoded row change routed to a worker.
pub struct Change {
    pub plan: Arc<TablePlan>,
    pub op: RowOp,
    pub before: Option<Vec<Datum>>,
    pub after: Option<Vec<Datum>>,
    /// Apply idempotently (the target may have it already).
    pub safe: bool,
    /// Of a linked table's change: where it is (`linked.rs`).
    pub place: Option<super::linked::Place>,
}

impl Change {
    /// About the size of its SQL: the new image, and of the old one what finds the row (its
    /// identity, or every column of a table without one).
    pub fn sql_len(&self) -> usize {
        let before = match (&self.before, &self.plan.identity) {
            (Some(b), Some(key)) => key
                .iter()
                .filter_map(|&i| b.get(i))
                .map(|d| d.sql_len() + 8)
                .sum(),
            (Some(b), None) => image_len(b),
            (None, _) => 0,
        };
        before + self.after.as_deref().map_or(0, image_len)
    }
}

/// Final state of a row after the merged changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowState {
    /// Did not exist before the batch.
    Insert,
    /// Existed and still does (written as REPLACE: an in-place update for a table with one
    /// unique key).
    Update,
    /// May have existed before; exists after.
    Replace,
    Delete,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Insert,
    Update,
    Delete,
}

fn merge(prev: Option<RowState>, op: Op) -> RowState {
    use RowState::*;
    match (prev, op) {
        (_, Op::Delete) => Delete,
        (None, Op::Insert) => Insert,
        (None | Some(Update), Op::Update) | (Some(Delete), Op::Update) => Update,
        (Some(Insert), Op::Update) => Insert,
        (Some(Replace), Op::Update) => Replace,
        (Some(Delete | Insert | Update | Replace), Op::Insert) => Replace,
    }
}

/// The statement that writes a row's final state (deletes are written apart).
fn write_verb(state: RowState, safe: bool) -> Option<&'static str> {
    match state {
        RowState::Delete => None,
        RowState::Insert if !safe => Some("INSERT"),
        _ => Some("REPLACE"),
    }
}

struct CompactTable {
    plan: Arc<TablePlan>,
    /// Identity key bytes -> index in `rows`.
    index: HashMap<Vec<u8>, usize>,
    /// (state, the newest image, written in safe mode)
    rows: Vec<(RowState, Vec<Datum>, bool)>,
}

/// Exact bytes of a row's identity key (compactable tables only: no collated text, no float).
fn key_bytes(plan: &TablePlan, row: &[Datum]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    for &i in plan.identity.as_deref().unwrap_or(&[]) {
        match &row[i] {
            Datum::Null => out.push(0),
            Datum::Int(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Datum::UInt(v) => {
                out.push(2);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Datum::Float(v) => {
                out.push(3);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Datum::Double(v) => {
                out.push(4);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Datum::Decimal(s) | Datum::Temporal(s) => {
                out.push(5);
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Datum::Bytes(b) => {
                out.push(6);
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    out
}

fn image_len(row: &[Datum]) -> usize {
    row.iter().map(|d| d.sql_len() + 1).sum::<usize>() + 2
}

#[derive(Default)]
pub struct Batch {
    ordered: RowBatch,
    compact: Vec<CompactTable>,
    by_table: HashMap<String, usize>,
    /// Changes taken.
    pub rows: usize,
    /// About the size of the SQL it will make.
    pub bytes: usize,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn push(&mut self, c: Change, compact: bool) {
        self.rows += 1;
        if !(compact && c.plan.compactable) {
            let before = self.ordered.bytes;
            self.ordered.push(
                &c.plan,
                c.op,
                c.before.as_deref(),
                c.after.as_deref(),
                c.safe,
            );
            self.bytes += self.ordered.bytes - before;
            return;
        }
        let Change {
            plan,
            op,
            before,
            after,
            safe,
            ..
        } = c;
        match (op, before, after) {
            (RowOp::Insert, _, Some(a)) => self.merge(&plan, Op::Insert, a, safe),
            (RowOp::Delete, Some(b), _) => self.merge(&plan, Op::Delete, b, safe),
            (RowOp::Update, Some(b), Some(a)) => {
                if key_bytes(&plan, &b) == key_bytes(&plan, &a) {
                    self.merge(&plan, Op::Update, a, safe);
                } else {
                    // A key change moves the row: the old key goes, the new one comes.
                    self.merge(&plan, Op::Delete, b, safe);
                    self.merge(&plan, Op::Insert, a, safe);
                }
            }
            _ => {}
        }
    }

    fn merge(&mut self, plan: &Arc<TablePlan>, op: Op, row: Vec<Datum>, safe: bool) {
        let t = *self
            .by_table
            .entry(plan.batch_key.clone())
            .or_insert_with(|| {
                self.compact.push(CompactTable {
                    plan: plan.clone(),
                    index: HashMap::new(),
                    rows: Vec::new(),
                });
                self.compact.len() - 1
            });
        let table = &mut self.compact[t];
        let key = key_bytes(plan, &row);
        let len = image_len(&row);
        match table.index.get(&key) {
            Some(&i) => {
                let (state, image, was_safe) = &mut table.rows[i];
                *state = merge(Some(*state), op);
                self.bytes = self.bytes + len - image_len(image);
                *image = row;
                *was_safe |= safe;
            }
            None => {
                table.index.insert(key, table.rows.len());
                table.rows.push((merge(None, op), row, safe));
                self.bytes += len;
            }
        }
    }

    /// The statements of the batch; the batch is empty afterwards.
    pub fn take_sql(&mut self) -> RowBatch {
        let mut out = std::mem::take(&mut self.ordered);
        for t in self.compact.drain(..) {
            let plan = &t.plan;
            let deletes: Vec<&[Datum]> = t
                .rows
                .iter()
                .filter(|(s, _, _)| *s == RowState::Delete)
                .map(|(_, r, _)| r.as_slice())
                .collect();
            for chunk in deletes.chunks(1000) {
                out.delete_many(plan, chunk);
            }
            for wanted in ["INSERT", "REPLACE"] {
                for (state, row, safe) in &t.rows {
                    if write_verb(*state, *safe) == Some(wanted) {
                        out.insert(plan, wanted, row);
                    }
                }
            }
        }
        self.by_table.clear();
        self.rows = 0;
        self.bytes = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::rows::tests::plan;

    fn row(id: i64, k: i64) -> Vec<Datum> {
        vec![Datum::Int(id), Datum::Int(k), Datum::Null]
    }

    fn change(
        p: &Arc<TablePlan>,
        op: RowOp,
        b: Option<Vec<Datum>>,
        a: Option<Vec<Datum>>,
    ) -> Change {
        Change {
            plan: p.clone(),
            op,
            before: b,
            after: a,
            safe: false,
            place: None,
        }
    }

    #[test]
    fn merges_to_final_states() {
        let p = Arc::new(plan(&["id"]));
        let mut b = Batch::default();
        let ins = |id, k| change(&p, RowOp::Insert, None, Some(row(id, k)));
        let upd = |id, k0, k| change(&p, RowOp::Update, Some(row(id, k0)), Some(row(id, k)));
        let del = |id, k| change(&p, RowOp::Delete, Some(row(id, k)), None);
        for c in [
            ins(1, 0),
            upd(1, 0, 1), // insert + update -> insert
            upd(2, 0, 1),
            upd(2, 1, 2), // update + update -> update
            upd(3, 0, 1),
            del(3, 1), // -> delete
            del(4, 0),
            ins(4, 5), // delete + insert -> replace
            change(&p, RowOp::Update, Some(row(5, 0)), Some(row(6, 0))), // key moves
        ] {
            b.push(c, true);
        }
        assert_eq!(b.rows, 9);
        assert_eq!(
            b.take_sql().joined(),
            "DELETE FROM `db`.`t` WHERE `id` IN (3,5);\n\
             INSERT INTO `db`.`t` (`id`,`k`,`v`) VALUES (1,1,NULL),(6,0,NULL);\n\
             REPLACE INTO `db`.`t` (`id`,`k`,`v`) VALUES (2,2,NULL),(4,5,NULL)"
        );
        assert!(b.is_empty());
    }
}
