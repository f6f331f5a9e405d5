//! The set of tracked tables, and how a table's model is read from a live server.

use crate::rules::TableFilter;
use crate::table::{Column, Table, TableName};
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Tracked tables, keyed by `schema.table` (as the source spells them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tracker {
    tables: BTreeMap<String, Table>,
}

fn key(name: &TableName) -> String {
    format!("{}.{}", name.schema, name.table)
}

impl Tracker {
    pub fn get(&self, name: &TableName) -> Option<&Table> {
        self.tables.get(&key(name))
    }

    pub fn insert(&mut self, table: Table) {
        self.tables.insert(key(&table.name), table);
    }

    pub fn remove(&mut self, name: &TableName) -> Option<Table> {
        self.tables.remove(&key(name))
    }

    pub fn rename(&mut self, from: &TableName, to: &TableName) {
        if let Some(mut t) = self.remove(from) {
            t.name = to.clone();
            self.insert(t);
        }
    }

    pub fn drop_schema(&mut self, db: &str) {
        self.tables.retain(|_, t| t.name.schema != db);
    }

    pub fn len(&self) -> usize {
        self.tables.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }
}

/// The model of every table `filter` selects, as the server (a source) has it now.
pub async fn tracker_now(
    conn: &mut mysql_async::Conn,
    filter: &TableFilter,
    addr: &str,
) -> crate::error::Result<Tracker> {
    let err = |e| crate::error::Error::db(crate::error::DbRole::Source, addr, e);
    let names = list_tables(conn, filter).await.map_err(err)?;
    let mut tracker = Tracker::default();
    for table in load_tables(conn, &names).await.map_err(err)? {
        tracker.insert(table);
    }
    Ok(tracker)
}

/// The databases of a live server that `filter` selects.
pub async fn list_schemas<Q: Queryable>(
    conn: &mut Q,
    filter: &TableFilter,
) -> Result<Vec<String>, mysql_async::Error> {
    let names: Vec<Vec<u8>> = conn
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        .await?;
    Ok(names
        .into_iter()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .filter(|db| filter.allows_schema(db))
        .collect())
}

/// The base tables of a live server that `filter` selects, in name order.
pub async fn list_tables<Q: Queryable>(
    conn: &mut Q,
    filter: &TableFilter,
) -> Result<Vec<TableName>, mysql_async::Error> {
    let rows: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter(|(d, t)| filter.allows_table(d, t))
        .map(|(d, t)| TableName::new(d, t))
        .collect())
}

/// A row of `information_schema.COLUMNS`: name, data type, column type, nullable, extra.
type ColumnRow = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);
/// A row of `information_schema.STATISTICS` for a unique index: index, column, prefix length.
type KeyRow = (Vec<u8>, Vec<u8>, Option<u64>);
/// The same rows after their table's name.
type TableColumnRow = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);
type TableKeyRow = (Vec<u8>, Vec<u8>, Vec<u8>, Option<u64>);

const COLUMNS: &str = "COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, IS_NULLABLE, UPPER(EXTRA) \
                       FROM information_schema.COLUMNS";
const KEYS: &str = "INDEX_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS";

/// Reads a table's model from `information_schema` of a live server; `None` if it does not
/// exist. Run it while holding a metadata lock on the table (inside the snapshot transaction
/// after reading from it) to get the model that matches the data.
pub async fn load_table<Q: Queryable>(
    conn: &mut Q,
    name: &TableName,
) -> Result<Option<Table>, mysql_async::Error> {
    let cols: Vec<ColumnRow> = conn
        .exec(
            format!("SELECT {COLUMNS} WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION"),
            (&name.schema, &name.table),
        )
        .await?;
    if cols.is_empty() {
        return Ok(None);
    }
    let keys: Vec<KeyRow> = conn
        .exec(
            format!(
                "SELECT {KEYS} WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
                 ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX"
            ),
            (&name.schema, &name.table),
        )
        .await?;
    Ok(Some(table_of(name.clone(), cols, keys)))
}

/// The models of `names` (tables gone meanwhile are left out), read with two queries per
/// database instead of two per table: a task over thousands of tables starts in seconds.
/// Not under a metadata lock: for checks and the tracker of a running stream, not for a copy.
pub async fn load_tables<Q: Queryable>(
    conn: &mut Q,
    names: &[TableName],
) -> Result<Vec<Table>, mysql_async::Error> {
    let mut by_schema: BTreeMap<&str, Vec<&TableName>> = BTreeMap::new();
    for n in names {
        by_schema.entry(&n.schema).or_default().push(n);
    }
    let mut out = Vec::with_capacity(names.len());
    for (schema, wanted) in by_schema {
        let cols: Vec<TableColumnRow> = conn
            .exec(
                format!(
                    "SELECT TABLE_NAME, {COLUMNS} WHERE TABLE_SCHEMA = ? \
                     ORDER BY TABLE_NAME, ORDINAL_POSITION"
                ),
                (schema,),
            )
            .await?;
        let keys: Vec<TableKeyRow> = conn
            .exec(
                format!(
                    "SELECT TABLE_NAME, {KEYS} WHERE TABLE_SCHEMA = ? AND NON_UNIQUE = 0 \
                     ORDER BY TABLE_NAME, INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX"
                ),
                (schema,),
            )
            .await?;
        let mut cols_of: BTreeMap<Vec<u8>, Vec<ColumnRow>> = BTreeMap::new();
        for (t, a, b, c, d, e) in cols {
            cols_of.entry(t).or_default().push((a, b, c, d, e));
        }
        let mut keys_of: BTreeMap<Vec<u8>, Vec<KeyRow>> = BTreeMap::new();
        for (t, a, b, c) in keys {
            keys_of.entry(t).or_default().push((a, b, c));
        }
        for name in wanted {
            let t = name.table.as_bytes();
            if let Some(cols) = cols_of.remove(t) {
                let keys = keys_of.remove(t).unwrap_or_default();
                out.push(table_of(name.clone(), cols, keys));
            }
        }
    }
    Ok(out)
}

/// A table's model from its `information_schema` rows.
fn table_of(name: TableName, cols: Vec<ColumnRow>, keys: Vec<KeyRow>) -> Table {
    let s = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    let columns = cols
        .into_iter()
        .map(|(n, dt, ct, nullable, extra)| {
            let column_type = s(ct);
            let extra = s(extra);
            let data_type = s(dt);
            let members = match data_type.as_str() {
                "enum" | "set" => crate::table::enum_members(&column_type),
                _ => vec![],
            };
            Column {
                name: s(n),
                data_type,
                unsigned: column_type.to_lowercase().contains("unsigned"),
                members,
                nullable: nullable == b"YES",
                generated: extra.contains("GENERATED")
                    || extra.contains("VIRTUAL")
                    || extra.contains("PERSISTENT"),
            }
        })
        .collect();
    let mut table = Table {
        name,
        columns,
        primary_key: vec![],
        unique_keys: vec![],
        prefixed_keys: vec![],
    };
    for (idx, col, sub_part) in keys {
        let (idx, col) = (s(idx), s(col));
        if sub_part.is_some() && !table.prefixed_keys.contains(&idx) {
            table.prefixed_keys.push(idx.clone());
        }
        if idx == "PRIMARY" {
            table.primary_key.push(col);
        } else {
            match table.unique_keys.last_mut() {
                Some((n, cols)) if *n == idx => cols.push(col),
                _ => table.unique_keys.push((idx, vec![col])),
            }
        }
    }
    table
}
