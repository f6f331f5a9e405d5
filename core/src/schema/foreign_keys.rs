//! Foreign keys between tables, and the groups they link tables into.
//!
//! With `foreign-key-checks: true`, every table a foreign key links to another (directly or
//! through others) is *linked*: the full phase copies a group of linked tables in one snapshot
//! and the incremental phase applies their changes in binlog order (`sync/linked.rs`). A
//! cascade changes rows the binlog does not name, so no finer order than the whole group's
//! is known to be safe: a child row deleted by its parent's cascade may be inserted again
//! under another parent, and nothing in that insert names the first parent.

use crate::table::TableName;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::{BTreeMap, BTreeSet};

/// One foreign key: `child` references `parent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub name: String,
    pub child: TableName,
    pub parent: TableName,
    pub on_update: String,
    pub on_delete: String,
}

impl ForeignKey {
    /// Its actions that change other rows (`ON DELETE CASCADE`, ...), empty when none.
    pub fn cascades(&self) -> Vec<String> {
        let mut out = vec![];
        for (when, rule) in [("DELETE", &self.on_delete), ("UPDATE", &self.on_update)] {
            if !matches!(rule.as_str(), "RESTRICT" | "NO ACTION") {
                out.push(format!("ON {when} {rule}"));
            }
        }
        out
    }
}

impl std::fmt::Display for ForeignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {} ({})", self.child, self.parent, self.name)
    }
}

/// The foreign keys of the server whose child table is in one of `schemas` (all when `None`).
pub async fn list(
    conn: &mut Conn,
    schemas: Option<&BTreeSet<String>>,
) -> mysql_async::Result<Vec<ForeignKey>> {
    type Row = (String, String, String, String, String, String, String);
    let rows: Vec<Row> = conn
        .query(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME, \
             CONSTRAINT_NAME, UPDATE_RULE, DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS \
             ORDER BY CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME",
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter(|(db, ..)| schemas.is_none_or(|s| s.contains(db)))
        .map(
            |(db, child, parent_db, parent, name, on_update, on_delete)| ForeignKey {
                name,
                child: TableName::new(&db, &child),
                parent: TableName::new(&parent_db, &parent),
                on_update,
                on_delete,
            },
        )
        .collect())
}

/// Tables linked by foreign keys, by group.
#[derive(Debug, Default, Clone)]
pub struct Groups {
    group_of: BTreeMap<TableName, usize>,
}

impl Groups {
    /// Groups the `tables` a task writes by the foreign keys between them. A foreign key from
    /// one of them to a table the task does not write is an error (its rows could not be
    /// checked); one from a table the task does not write is not the task's.
    pub fn of(tables: &BTreeSet<TableName>, fks: &[ForeignKey]) -> Result<Groups, String> {
        let mut parent: BTreeMap<TableName, TableName> = BTreeMap::new();
        fn root(parent: &BTreeMap<TableName, TableName>, t: &TableName) -> TableName {
            let mut t = t.clone();
            while let Some(p) = parent.get(&t).filter(|p| **p != t) {
                t = p.clone();
            }
            t
        }
        for fk in fks.iter().filter(|fk| tables.contains(&fk.child)) {
            if !tables.contains(&fk.parent) {
                return Err(format!(
                    "foreign key {fk} references a table the task does not migrate: with foreign-key-checks its rows would be refused"
                ));
            }
            for t in [&fk.child, &fk.parent] {
                parent.entry(t.clone()).or_insert_with(|| t.clone());
            }
            let (a, b) = (root(&parent, &fk.child), root(&parent, &fk.parent));
            if a != b {
                parent.insert(a, b);
            }
        }
        let mut ids: BTreeMap<TableName, usize> = BTreeMap::new();
        let mut group_of = BTreeMap::new();
        for t in parent.keys() {
            let r = root(&parent, t);
            let next = ids.len();
            group_of.insert(t.clone(), *ids.entry(r).or_insert(next));
        }
        Ok(Groups { group_of })
    }

    /// Whether `table` is linked to another by a foreign key.
    pub fn linked(&self, table: &TableName) -> bool {
        self.group_of.contains_key(table)
    }

    /// The groups, each a set of tables.
    pub fn groups(&self) -> Vec<BTreeSet<TableName>> {
        let mut out: BTreeMap<usize, BTreeSet<TableName>> = BTreeMap::new();
        for (t, g) in &self.group_of {
            out.entry(*g).or_default().insert(t.clone());
        }
        out.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fk(child: &str, parent: &str) -> ForeignKey {
        ForeignKey {
            name: format!("{child}_fk"),
            child: TableName::new("d", child),
            parent: TableName::new("d", parent),
            on_update: "RESTRICT".into(),
            on_delete: "CASCADE".into(),
        }
    }

    fn set(names: &[&str]) -> BTreeSet<TableName> {
        names.iter().map(|n| TableName::new("d", *n)).collect()
    }

    #[test]
    fn groups_follow_chains_and_refuse_parents_out_of_scope() {
        let fks = [fk("c", "b"), fk("b", "a"), fk("y", "x"), fk("z", "c")];
        let g = Groups::of(&set(&["a", "b", "c", "x", "y", "z", "lone"]), &fks).unwrap();
        assert_eq!(
            g.groups(),
            vec![set(&["a", "b", "c", "z"]), set(&["x", "y"])]
        );
        assert!(!g.linked(&TableName::new("d", "lone")));
        let err = Groups::of(&set(&["c", "b"]), &fks).unwrap_err();
        assert!(
            err.contains("d.b -> d.a") || err.contains("`d`.`b`"),
            "{err}"
        );
        // A table outside the task referencing one inside is not the task's.
        let g = Groups::of(&set(&["a"]), &fks).unwrap();
        assert!(g.groups().is_empty());
        assert_eq!(fks[0].cascades(), vec!["ON DELETE CASCADE".to_string()]);
    }
}
