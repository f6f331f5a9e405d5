//! Row changes to SQL statements. Consecutive inserts into one table become one multi-row
//! statement; a batch's statements are sent together as one multi-statement text, and kept
//! apart so that a failing one can be named.
//!
//! Safe mode makes every change idempotent, so that replaying changes the target already has
//! converges to the same state: INSERT becomes REPLACE, UPDATE becomes DELETE of the old key +
//! REPLACE of the new row, DELETE stays.

use super::plan::TablePlan;
use crate::datum::Datum;
use crate::db::quote_ident;
use crate::table::RowOp;
use crate::table::{Column, ColumnKind};

/// Writes `item` for each column the target accepts values for (not generated), comma
/// separated.
fn write_written_columns(
    sql: &mut String,
    plan: &TablePlan,
    row: &[Datum],
    mut item: impl FnMut(&mut String, &Column, &Datum),
) {
    let mut first = true;
    for (c, v) in plan
        .table
        .columns
        .iter()
        .zip(row)
        .filter(|(c, _)| !c.generated)
    {
        if !first {
            sql.push(',');
        }
        first = false;
        item(sql, c, v);
    }
}

/// One statement and the table it writes.
pub struct Statement {
    pub sql: String,
    pub table: String,
}

/// SQL statements of a batch of row changes.
#[derive(Default)]
pub struct RowBatch {
    pub stmts: Vec<Statement>,
    /// The last statement is an INSERT/REPLACE of (table, verb) open for more VALUES.
    open_insert: Option<(String, &'static str)>,
    /// Total length of the statements.
    pub bytes: usize,
}

impl RowBatch {
    pub fn is_empty(&self) -> bool {
        self.stmts.is_empty()
    }

    fn begin_statement(&mut self, plan: &TablePlan) -> &mut String {
        self.open_insert = None;
        self.stmts.push(Statement {
            sql: String::new(),
            table: plan.quoted.clone(),
        });
        &mut self.stmts.last_mut().expect("just pushed").sql
    }

    /// Runs `write` on the open statement and keeps `bytes` up to date.
    fn write_last(&mut self, write: impl FnOnce(&mut String)) {
        let sql = &mut self.stmts.last_mut().expect("a statement is open").sql;
        let before = sql.len();
        write(sql);
        self.bytes += sql.len() - before;
    }

    /// Adds a row to a multi-row `verb INTO table (...) VALUES` statement.
    pub fn insert(&mut self, plan: &TablePlan, verb: &'static str, row: &[Datum]) {
        let same = matches!(&self.open_insert, Some((t, v)) if *t == plan.batch_key && *v == verb);
        if same {
            self.write_last(|sql| sql.push(','));
        } else {
            self.begin_statement(plan);
            self.write_last(|sql| {
                sql.push_str(verb);
                sql.push_str(" INTO ");
                sql.push_str(&plan.quoted);
                sql.push_str(" (");
                write_written_columns(sql, plan, row, |sql, c, _| {
                    sql.push_str(&quote_ident(&c.name))
                });
                for (c, _) in &plan.extra {
                    sql.push(',');
                    sql.push_str(&quote_ident(c));
                }
                sql.push_str(") VALUES ");
            });
            self.open_insert = Some((plan.batch_key.clone(), verb));
        }
        self.write_last(|sql| {
            sql.push('(');
            write_written_columns(sql, plan, row, |sql, c, v| v.write_sql_for(c.kind(), sql));
            for (_, v) in &plan.extra {
                sql.push(',');
                v.write_sql(sql);
            }
            sql.push(')');
        });
    }

    /// `DELETE ... WHERE key IN (...)` for rows of a table with an identity key.
    pub fn delete_many(&mut self, plan: &TablePlan, rows: &[&[Datum]]) {
        let Some(key) = &plan.identity else {
            for row in rows {
                self.delete(plan, row);
            }
            return;
        };
        if rows.is_empty() {
            return;
        }
        let cols = &plan.table.columns;
        self.begin_statement(plan);
        self.write_last(|sql| {
            sql.push_str("DELETE FROM ");
            sql.push_str(&plan.quoted);
            sql.push_str(" WHERE ");
            write_extra_match(sql, plan, " AND ");
            if let [i] = key[..] {
                sql.push_str(&quote_ident(&cols[i].name));
                sql.push_str(" IN (");
                for (n, row) in rows.iter().enumerate() {
                    if n > 0 {
                        sql.push(',');
                    }
                    row[i].write_sql(sql);
                }
                sql.push(')');
            } else {
                // (a = .. AND b = ..) OR ...: every server plans this as ranges.
                for (n, row) in rows.iter().enumerate() {
                    if n > 0 {
                        sql.push_str(" OR ");
                    }
                    sql.push('(');
                    write_key_match(sql, plan, key, row);
                    sql.push(')');
                }
            }
        });
    }

    /// `WHERE` that finds the row: its identity key, else every comparable column.
    fn where_clause(&mut self, plan: &TablePlan, row: &[Datum]) {
        self.write_last(|sql| {
            sql.push_str(" WHERE ");
            write_extra_match(sql, plan, " AND ");
            match &plan.identity {
                Some(k) => write_key_match(sql, plan, k, row),
                None => {
                    // FLOAT values do not compare equal to their literal; generated columns
                    // are computed anyway.
                    let cols: Vec<usize> = (0..plan.table.columns.len())
                        .filter(|&i| {
                            let c = &plan.table.columns[i];
                            !c.generated && c.kind() != ColumnKind::Float
                        })
                        .collect();
                    write_key_match(sql, plan, &cols, row);
                    sql.push_str(" LIMIT 1");
                }
            }
        });
    }

    fn delete(&mut self, plan: &TablePlan, row: &[Datum]) {
        self.begin_statement(plan);
        self.write_last(|sql| {
            sql.push_str("DELETE FROM ");
            sql.push_str(&plan.quoted);
        });
        self.where_clause(plan, row);
    }

    fn update(&mut self, plan: &TablePlan, before: &[Datum], after: &[Datum]) {
        self.begin_statement(plan);
        self.write_last(|sql| {
            sql.push_str("UPDATE ");
            sql.push_str(&plan.quoted);
            sql.push_str(" SET ");
            write_written_columns(sql, plan, after, |sql, c, v| {
                sql.push_str(&quote_ident(&c.name));
                sql.push('=');
                v.write_sql_for(c.kind(), sql);
            });
        });
        self.where_clause(plan, before);
    }

    /// Adds one row change, in order.
    pub fn push(
        &mut self,
        plan: &TablePlan,
        op: RowOp,
        before: Option<&[Datum]>,
        after: Option<&[Datum]>,
        safe: bool,
    ) {
        match (op, before, after) {
            (RowOp::Insert, _, Some(a)) => {
                self.insert(plan, if safe { "REPLACE" } else { "INSERT" }, a)
            }
            (RowOp::Delete, Some(b), _) => self.delete(plan, b),
            (RowOp::Update, Some(b), Some(a)) => {
                if safe && plan.identity.is_some() {
                    self.delete(plan, b);
                    self.insert(plan, "REPLACE", a);
                } else {
                    self.update(plan, b, a);
                }
            }
            _ => {}
        }
    }

    /// All statements as one multi-statement text.
    #[cfg(test)]
    pub fn joined(&self) -> String {
        let mut out = String::with_capacity(self.bytes + 2 * self.stmts.len());
        self.join_into(&mut out);
        out
    }

    /// The statements separated by `;`, appended to `out` (no copy of the whole in between).
    pub fn join_into(&self, out: &mut String) {
        for (n, s) in self.stmts.iter().enumerate() {
            if n > 0 {
                out.push_str(";\n");
            }
            out.push_str(&s.sql);
        }
    }
}

/// `x = 'v'` for each column a route adds, each followed by `then`: a row merged from a shard
/// is found among the rows of the other shards by its extract values.
fn write_extra_match(sql: &mut String, plan: &TablePlan, then: &str) {
    for (c, v) in &plan.extra {
        sql.push_str(&quote_ident(c));
        sql.push_str(" = ");
        v.write_sql(sql);
        sql.push_str(then);
    }
}

/// `a = 1 AND b <=> NULL` for the columns `cols` of `row`.
fn write_key_match(sql: &mut String, plan: &TablePlan, cols: &[usize], row: &[Datum]) {
    for (n, &i) in cols.iter().enumerate() {
        if n > 0 {
            sql.push_str(" AND ");
        }
        sql.push_str(&quote_ident(&plan.table.columns[i].name));
        sql.push_str(if row[i].is_null() { " <=> " } else { " = " });
        row[i].write_sql(sql);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::table::{Table, TableName};

    pub fn plan(pk: &[&str]) -> TablePlan {
        let col = |n: &str, t: &str| Column {
            name: n.into(),
            data_type: t.into(),
            unsigned: false,
            nullable: n == "v",
            generated: false,
            members: vec![],
        };
        TablePlan::new(
            Table {
                name: TableName::new("db", "t"),
                columns: vec![col("id", "int"), col("k", "int"), col("v", "varchar")],
                primary_key: pk.iter().map(|s| s.to_string()).collect(),
                unique_keys: vec![],
                prefixed_keys: vec![],
            },
            None,
        )
    }

    #[test]
    fn inserts_merge_and_safe_mode_replaces() {
        let t = plan(&["id"]);
        let r1 = [Datum::Int(1), Datum::Int(0), Datum::Bytes(b"a".to_vec())];
        let r2 = [Datum::Int(2), Datum::Int(0), Datum::Null];
        let mut b = RowBatch::default();
        b.push(&t, RowOp::Insert, None, Some(&r1), false);
        b.push(&t, RowOp::Insert, None, Some(&r2), false);
        b.push(&t, RowOp::Update, Some(&r1), Some(&r2), true);
        b.push(&t, RowOp::Delete, Some(&r2), None, false);
        b.delete_many(&t, &[&r1, &r2]);
        b.delete_many(&plan(&["id", "k"]), &[&r1, &r2]);
        assert_eq!(
            b.joined(),
            "INSERT INTO `db`.`t` (`id`,`k`,`v`) VALUES (1,0,X'61'),(2,0,NULL);\n\
             DELETE FROM `db`.`t` WHERE `id` = 1;\n\
             REPLACE INTO `db`.`t` (`id`,`k`,`v`) VALUES (2,0,NULL);\n\
             DELETE FROM `db`.`t` WHERE `id` = 2;\n\
             DELETE FROM `db`.`t` WHERE `id` IN (1,2);\n\
             DELETE FROM `db`.`t` WHERE (`id` = 1 AND `k` = 0) OR (`id` = 2 AND `k` = 0)"
        );
        assert_eq!(b.bytes + 5 * 2, b.joined().len());
    }
}
