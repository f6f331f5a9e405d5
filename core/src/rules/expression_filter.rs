//! Expression filters of a task (TiDB DM's `expression-filter`): per table, rows whose values
//! make an expression true are dropped: inserted rows (`insert-value-expr`, also the rows the
//! full phase copies), updates by their old and/or new values (both must match when both are
//! given), deleted rows.

use crate::config::ExpressionFilter;
use crate::datum::Datum;
use crate::expr::RowExpr;
use crate::table::RowOp;
use crate::table::{Table, TableName};
use std::collections::BTreeMap;

/// One `expression-filter` entry: each filter decides on its own (as in TiDB DM), so two
/// filters' old- and new-value expressions never combine.
#[derive(Debug, Clone, Default)]
struct Filter {
    insert: Option<RowExpr>,
    update_old: Option<RowExpr>,
    update_new: Option<RowExpr>,
    delete: Option<RowExpr>,
}

#[derive(Debug, Clone, Default)]
pub struct ExpressionFilters {
    tables: BTreeMap<TableName, Vec<Filter>>,
}

fn is_true(e: &Option<RowExpr>, table: &Table, row: &[Datum]) -> Result<bool, String> {
    match e {
        Some(e) => e.matches(table, row),
        None => Ok(false),
    }
}

impl Filter {
    fn drops(
        &self,
        table: &Table,
        op: RowOp,
        before: Option<&[Datum]>,
        after: Option<&[Datum]>,
    ) -> Result<bool, String> {
        match (op, before, after) {
            (RowOp::Insert, _, Some(a)) => is_true(&self.insert, table, a),
            (RowOp::Delete, Some(b), _) => is_true(&self.delete, table, b),
            (RowOp::Update, Some(b), Some(a)) => {
                if self.update_old.is_none() && self.update_new.is_none() {
                    return Ok(false);
                }
                // A side the filter does not name holds.
                let old = self.update_old.is_none() || is_true(&self.update_old, table, b)?;
                let new = self.update_new.is_none() || is_true(&self.update_new, table, a)?;
                Ok(old && new)
            }
            _ => Ok(false),
        }
    }
}

impl ExpressionFilters {
    /// Expressions were validated when the task file was parsed.
    pub fn new<'a>(filters: impl IntoIterator<Item = &'a ExpressionFilter>) -> Self {
        let mut tables: BTreeMap<TableName, Vec<Filter>> = BTreeMap::new();
        let parse = |text: &Option<String>| text.as_deref().and_then(|t| RowExpr::parse(t).ok());
        for f in filters {
            tables
                .entry(TableName::new(f.schema.clone(), f.table.clone()))
                .or_default()
                .push(Filter {
                    insert: parse(&f.insert_value_expr),
                    update_old: parse(&f.update_old_value_expr),
                    update_new: parse(&f.update_new_value_expr),
                    delete: parse(&f.delete_value_expr),
                });
        }
        ExpressionFilters { tables }
    }

    /// Whether rows of `table` are ever filtered.
    pub fn has(&self, table: &TableName) -> bool {
        self.tables.contains_key(table)
    }

    /// Whether a change is dropped: some filter of its table drops it.
    pub fn drops(
        &self,
        table: &Table,
        op: RowOp,
        before: Option<&[Datum]>,
        after: Option<&[Datum]>,
    ) -> Result<bool, String> {
        for f in self.tables.get(&table.name).into_iter().flatten() {
            if f.drops(table, op, before, after)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TiDB DM's expression_filter t5: three update filters on one table, each on its own.
    #[test]
    fn each_filter_decides_on_its_own() {
        let f = |old: Option<&str>, new: Option<&str>| ExpressionFilter {
            schema: "d".into(),
            table: "t5".into(),
            insert_value_expr: None,
            update_old_value_expr: old.map(str::to_string),
            update_new_value_expr: new.map(str::to_string),
            delete_value_expr: None,
        };
        let filters = [
            f(Some("c > 100"), None),
            f(None, Some("c > 100")),
            f(Some("c = 1"), Some("c = 2")),
        ];
        let rf = ExpressionFilters::new(&filters);
        let table = Table::of_nullable_ints(TableName::new("d", "t5"), &["c"]);
        let update = |from: i64, to: i64| {
            rf.drops(
                &table,
                RowOp::Update,
                Some(&[Datum::Int(from)]),
                Some(&[Datum::Int(to)]),
            )
            .unwrap()
        };
        assert!(update(99, 110), "new value > 100");
        assert!(update(101, 20), "old value > 100");
        assert!(update(1, 2), "old = 1 and new = 2");
        assert!(!update(1, 3), "no filter holds on both of its sides");
    }
}
