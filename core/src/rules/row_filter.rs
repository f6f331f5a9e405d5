//! Expression filters of a task (TiDB DM's `expression-filter`): per table, rows whose values
//! make an expression true are dropped: inserted rows (`insert-value-expr`, also the rows the
//! full phase copies), updates by their old and/or new values (both must match when both are
//! given), deleted rows.

use super::RowExpr;
use crate::config::ExpressionFilter;
use crate::db::Datum;
use crate::schema::{Table, TableName};
use crate::upstream::RowOp;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
struct TableExprs {
    insert: Vec<RowExpr>,
    update_old: Vec<RowExpr>,
    update_new: Vec<RowExpr>,
    delete: Vec<RowExpr>,
}

#[derive(Debug, Clone, Default)]
pub struct RowFilters {
    tables: BTreeMap<TableName, TableExprs>,
}

fn any_true(exprs: &[RowExpr], table: &Table, row: &[Datum]) -> Result<bool, String> {
    for e in exprs {
        if e.matches(table, row)? {
            return Ok(true);
        }
    }
    Ok(false)
}

impl RowFilters {
    /// Expressions were validated when the task file was parsed.
    pub fn new<'a>(filters: impl IntoIterator<Item = &'a ExpressionFilter>) -> Self {
        let mut tables: BTreeMap<TableName, TableExprs> = BTreeMap::new();
        for f in filters {
            let t = tables
                .entry(TableName::new(f.schema.clone(), f.table.clone()))
                .or_default();
            for (text, list) in [
                (&f.insert_value_expr, &mut t.insert),
                (&f.update_old_value_expr, &mut t.update_old),
                (&f.update_new_value_expr, &mut t.update_new),
                (&f.delete_value_expr, &mut t.delete),
            ] {
                if let Some(e) = text.as_deref().and_then(|t| RowExpr::parse(t).ok()) {
                    list.push(e);
                }
            }
        }
        RowFilters { tables }
    }

    /// Whether rows of `table` are ever filtered.
    pub fn has(&self, table: &TableName) -> bool {
        self.tables.contains_key(table)
    }

    /// Whether a change is dropped.
    pub fn drops(
        &self,
        table: &Table,
        op: RowOp,
        before: Option<&[Datum]>,
        after: Option<&[Datum]>,
    ) -> Result<bool, String> {
        let Some(t) = self.tables.get(&table.name) else {
            return Ok(false);
        };
        match (op, before, after) {
            (RowOp::Insert, _, Some(a)) => any_true(&t.insert, table, a),
            (RowOp::Delete, Some(b), _) => any_true(&t.delete, table, b),
            (RowOp::Update, Some(b), Some(a)) => {
                if t.update_old.is_empty() && t.update_new.is_empty() {
                    return Ok(false);
                }
                let old = t.update_old.is_empty() || any_true(&t.update_old, table, b)?;
                let new = t.update_new.is_empty() || any_true(&t.update_new, table, a)?;
                Ok(old && new)
            }
            _ => Ok(false),
        }
    }
}
