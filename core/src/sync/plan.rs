//! What the apply path needs to know of a table, worked out once per schema version instead
//! of once per row.

use crate::db::quote_str;

use crate::datum::Datum;
use crate::rules::Routed;
use crate::table::{ColumnKind, Table};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

pub struct TablePlan {
    /// The source table as tracked.
    pub table: Table,
    /// The table written, quoted for SQL: the source table's name, or where a route sends it.
    pub quoted: String,
    /// Columns a route adds to every row (extract rules), with their values.
    pub extra: Vec<(String, Datum)>,
    /// Groups rows written together: the target and the extra values.
    pub batch_key: String,
    /// Columns that identify a row: the primary key, else a non-null unique key.
    pub identity: Option<Vec<usize>>,
    /// Every unique key, the identity first: changes sharing a value of one of them must be
    /// applied in binlog order.
    pub unique_keys: Vec<Vec<usize>>,
    /// Per unique key: it has a prefix column, so values that differ after the prefix may
    /// still collide.
    pub prefixed: Vec<bool>,
    /// Per column: a text type whose equality follows a collation (case, trailing spaces).
    pub collated: Vec<bool>,
    /// Changes of one row may be merged in a batch: the identity is the only unique key and
    /// compares byte for byte (no text, no floats), so equal key bytes mean the same row.
    pub compactable: bool,
    /// Hash of the target table and the extra values, the seed of its causality keys:
    /// shards merged into one table conflict only with the same extract values.
    pub name_hash: u64,
    /// Linked to other tables by foreign keys: applied by the linked worker (`linked.rs`).
    pub linked: bool,
}

fn is_collated_text(data_type: &str) -> bool {
    matches!(
        data_type,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
    )
}

impl TablePlan {
    pub fn new(table: Table, routed: Option<Routed>) -> Self {
        let identity = table.identity_key();
        let has_prefix = |name: &str| table.prefixed_keys.iter().any(|k| k == name);
        // The identity is the primary key, else the first NOT NULL unique key.
        let identity_prefixed = if table.primary_key.is_empty() {
            table.unique_keys.iter().any(|(n, cols)| {
                has_prefix(n)
                    && cols
                        .iter()
                        .map(|c| table.column_index(c))
                        .collect::<Option<Vec<_>>>()
                        == identity
            })
        } else {
            has_prefix("PRIMARY")
        };
        let mut unique_keys: Vec<Vec<usize>> = identity.iter().cloned().collect();
        let mut prefixed: Vec<bool> = identity.iter().map(|_| identity_prefixed).collect();
        for (name, cols) in &table.unique_keys {
            let ix: Option<Vec<usize>> = cols.iter().map(|c| table.column_index(c)).collect();
            if let Some(ix) = ix {
                match unique_keys.iter().position(|k| *k == ix) {
                    Some(i) => prefixed[i] |= has_prefix(name),
                    None => {
                        unique_keys.push(ix);
                        prefixed.push(has_prefix(name));
                    }
                }
            }
        }
        let collated: Vec<bool> = table
            .columns
            .iter()
            .map(|c| is_collated_text(&c.data_type))
            .collect();
        let compactable = unique_keys.len() == 1
            && !prefixed[0]
            && identity.as_ref().is_some_and(|k| {
                k.iter().all(|&i| {
                    !collated[i]
                        && !matches!(
                            table.columns[i].kind(),
                            ColumnKind::Float | ColumnKind::Double
                        )
                })
            });
        let (target, extra) = match routed {
            Some(r) => (r.target, r.extra),
            None => (table.name.clone(), vec![]),
        };
        let mut h = DefaultHasher::new();
        target.hash(&mut h);
        extra.hash(&mut h);
        let quoted = target.quoted();
        let batch_key = extra
            .iter()
            .fold(quoted.clone(), |k, (_, v)| k + "\0" + &quote_str(v));
        TablePlan {
            quoted,
            extra: extra
                .into_iter()
                .map(|(c, v)| (c, Datum::Bytes(v.into_bytes())))
                .collect(),
            batch_key,
            identity,
            unique_keys,
            prefixed,
            collated,
            compactable,
            name_hash: h.finish(),
            table,
            linked: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Column, TableName};

    fn col(n: &str, t: &str) -> Column {
        Column {
            name: n.into(),
            data_type: t.into(),
            unsigned: false,
            nullable: false,
            generated: false,
            members: vec![],
        }
    }

    #[test]
    fn compactable_only_with_one_exact_key() {
        let mut t = Table {
            name: TableName::new("d", "t"),
            columns: vec![col("id", "int"), col("u", "varchar")],
            primary_key: vec!["id".into()],
            unique_keys: vec![],
            prefixed_keys: vec![],
        };
        assert!(TablePlan::new(t.clone(), None).compactable);
        t.unique_keys.push(("u".into(), vec!["u".into()]));
        let p = TablePlan::new(t.clone(), None);
        assert!(!p.compactable);
        assert_eq!(p.unique_keys, vec![vec![0], vec![1]]);
        t.unique_keys.clear();
        t.primary_key = vec!["u".into()];
        assert!(!TablePlan::new(t.clone(), None).compactable);
        t.primary_key.clear();
        assert!(TablePlan::new(t, None).identity.is_none());
    }
}
