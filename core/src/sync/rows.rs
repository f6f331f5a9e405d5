//! Row changes to SQL. Consecutive inserts into one table become one multi-row statement;
//! statements of a batch are sent together as one multi-statement text.
//!
//! Safe mode makes every change idempotent, so that replaying changes the target already has
//! converges to the same state: INSERT becomes REPLACE, UPDATE becomes DELETE of the old key +
//! REPLACE of the new row, DELETE stays.

use crate::db::{quote_ident, Datum};
use crate::schema::{Column, ColumnKind, Table};
use crate::upstream::RowOp;

/// Writes `item` for each column the target accepts values for (not generated), comma
/// separated.
fn write_written_columns(
    sql: &mut String,
    table: &Table,
    row: &[Datum],
    mut item: impl FnMut(&mut String, &Column, &Datum),
) {
    let mut first = true;
    for (c, v) in table.columns.iter().zip(row).filter(|(c, _)| !c.generated) {
        if !first {
            sql.push(',');
        }
        first = false;
        item(sql, c, v);
    }
}

/// SQL text of a batch of row changes.
#[derive(Default)]
pub struct RowBatch {
    pub sql: String,
    /// (table, verb) of the statement that is still open for more VALUES.
    open_insert: Option<(String, &'static str)>,
    pub rows: u64,
}

impl RowBatch {
    pub fn is_empty(&self) -> bool {
        self.sql.is_empty()
    }

    pub fn len(&self) -> usize {
        self.sql.len()
    }

    pub fn clear(&mut self) {
        self.sql.clear();
        self.open_insert = None;
        self.rows = 0;
    }

    fn begin_statement(&mut self) {
        if !self.sql.is_empty() {
            self.sql.push_str(";\n");
        }
        self.open_insert = None;
    }

    /// Appends a raw statement (e.g. the checkpoint).
    pub fn push_statement(&mut self, stmt: &str) {
        self.begin_statement();
        self.sql.push_str(stmt);
    }

    fn insert(&mut self, table: &Table, verb: &'static str, row: &[Datum]) {
        let qname = table.name.quoted();
        let same = matches!(&self.open_insert, Some((t, v)) if *t == qname && *v == verb);
        if same {
            self.sql.push(',');
        } else {
            self.begin_statement();
            self.sql.push_str(verb);
            self.sql.push_str(" INTO ");
            self.sql.push_str(&qname);
            self.sql.push_str(" (");
            write_written_columns(&mut self.sql, table, row, |sql, c, _| {
                sql.push_str(&quote_ident(&c.name))
            });
            self.sql.push_str(") VALUES ");
            self.open_insert = Some((qname, verb));
        }
        self.sql.push('(');
        write_written_columns(&mut self.sql, table, row, |sql, _, v| v.write_sql(sql));
        self.sql.push(')');
    }

    /// `WHERE` that finds the row: its identity key, else every comparable column.
    fn where_clause(&mut self, table: &Table, row: &[Datum]) {
        self.sql.push_str(" WHERE ");
        let key = table.identity_key();
        let cols: Vec<usize> = match &key {
            Some(k) => k.clone(),
            // FLOAT values do not compare equal to their literal; generated columns are
            // computed anyway.
            None => (0..table.columns.len())
                .filter(|&i| {
                    !table.columns[i].generated && table.columns[i].kind() != ColumnKind::Float
                })
                .collect(),
        };
        for (n, &i) in cols.iter().enumerate() {
            if n > 0 {
                self.sql.push_str(" AND ");
            }
            self.sql.push_str(&quote_ident(&table.columns[i].name));
            self.sql
                .push_str(if row[i].is_null() { " <=> " } else { " = " });
            row[i].write_sql(&mut self.sql);
        }
        if key.is_none() {
            self.sql.push_str(" LIMIT 1");
        }
    }

    fn delete(&mut self, table: &Table, row: &[Datum]) {
        self.begin_statement();
        self.sql.push_str("DELETE FROM ");
        self.sql.push_str(&table.name.quoted());
        self.where_clause(table, row);
    }

    fn update(&mut self, table: &Table, before: &[Datum], after: &[Datum]) {
        self.begin_statement();
        self.sql.push_str("UPDATE ");
        self.sql.push_str(&table.name.quoted());
        self.sql.push_str(" SET ");
        write_written_columns(&mut self.sql, table, after, |sql, c, v| {
            sql.push_str(&quote_ident(&c.name));
            sql.push('=');
            v.write_sql(sql);
        });
        self.where_clause(table, before);
    }

    /// Adds one row change.
    pub fn push(
        &mut self,
        table: &Table,
        op: RowOp,
        before: Option<&[Datum]>,
        after: Option<&[Datum]>,
        safe: bool,
    ) {
        self.rows += 1;
        match (op, before, after) {
            (RowOp::Insert, _, Some(a)) => {
                self.insert(table, if safe { "REPLACE" } else { "INSERT" }, a)
            }
            (RowOp::Delete, Some(b), _) => self.delete(table, b),
            (RowOp::Update, Some(b), Some(a)) => {
                if safe && table.identity_key().is_some() {
                    self.delete(table, b);
                    self.insert(table, "REPLACE", a);
                } else {
                    self.update(table, b, a);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TableName;

    fn table() -> Table {
        let col = |n: &str, t: &str| Column {
            name: n.into(),
            data_type: t.into(),
            unsigned: false,
            nullable: n != "id",
            generated: false,
        };
        Table {
            name: TableName::new("db", "t"),
            columns: vec![col("id", "int"), col("v", "varchar")],
            primary_key: vec!["id".into()],
            unique_keys: vec![],
        }
    }

    #[test]
    fn inserts_merge_and_safe_mode_replaces() {
        let t = table();
        let r1 = [Datum::Int(1), Datum::Bytes(b"a".to_vec())];
        let r2 = [Datum::Int(2), Datum::Null];
        let mut b = RowBatch::default();
        b.push(&t, RowOp::Insert, None, Some(&r1), false);
        b.push(&t, RowOp::Insert, None, Some(&r2), false);
        b.push(&t, RowOp::Update, Some(&r1), Some(&r2), true);
        b.push(&t, RowOp::Delete, Some(&r2), None, false);
        assert_eq!(
            b.sql,
            "INSERT INTO `db`.`t` (`id`,`v`) VALUES (1,X'61'),(2,NULL);\n\
             DELETE FROM `db`.`t` WHERE `id` = 1;\n\
             REPLACE INTO `db`.`t` (`id`,`v`) VALUES (2,NULL);\n\
             DELETE FROM `db`.`t` WHERE `id` = 2"
        );
    }
}
