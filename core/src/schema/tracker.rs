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
    let mut tracker = Tracker::default();
    for name in list_tables(conn, filter).await.map_err(err)? {
        if let Some(table) = load_table(conn, &name).await.map_err(err)? {
            tracker.insert(table);
        }
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

/// Reads a table's model from `information_schema` of a live server; `None` if it does not
/// exist. Run it while holding a metadata lock on the table (inside the snapshot transaction
/// after reading from it) to get the model that matches the data.
pub async fn load_table<Q: Queryable>(
    conn: &mut Q,
    name: &TableName,
) -> Result<Option<Table>, mysql_async::Error> {
    // name, data type, column type, nullable, extra
    type ColumnRow = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);
    let cols: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, IS_NULLABLE, UPPER(EXTRA) \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (&name.schema, &name.table),
        )
        .await?;
    if cols.is_empty() {
        return Ok(None);
    }
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
    let keys: Vec<(Vec<u8>, Vec<u8>, Option<u64>)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
             ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
            (&name.schema, &name.table),
        )
        .await?;
    let mut table = Table {
        name: name.clone(),
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
    Ok(Some(table))
}
