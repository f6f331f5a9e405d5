//! A dump directory written by mydumper or dumpling: `metadata` (the source's binlog position
//! at the dump), `<db>-schema-create.sql`, `<db>.<table>-schema.sql` and the data files
//! `<db>.<table>.sql` / `<db>.<table>.<n>.sql`. Other files (views, triggers, routines,
//! compressed files) are named in the answer so nothing is left out silently. A dump dm wrote
//! (`task-mode: dump`) has its journal: it must be finished, and names in its file names are
//! decoded (`dump::layout::file_part`).

use crate::config::Flavor;
use crate::dump::layout::{self, Journal};
use crate::error::{Error, Result};
use crate::position::{BinlogPos, Position};
use crate::table::TableName;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
pub struct DumpDir {
    /// Where the dump was taken, from `metadata`.
    pub position: Option<Position>,
    /// dm's dumps read without a lock: replication stays in safe mode up to here.
    pub safe_until: Option<BinlogPos>,
    /// dm's dumps: the position each table was read at (its events before it are in its
    /// files).
    pub table_positions: Vec<(TableName, BinlogPos)>,
    /// Database -> its CREATE DATABASE file.
    pub databases: BTreeMap<String, PathBuf>,
    /// Table -> its CREATE TABLE file.
    pub schemas: BTreeMap<TableName, PathBuf>,
    /// Table -> its data files, in order.
    pub data: BTreeMap<TableName, Vec<PathBuf>>,
    /// Files dm does not import.
    pub other: Vec<String>,
}

fn bad(dir: &Path, why: String) -> Error {
    Error::Invalid(format!(
        "dump directory {}: {why}; give a directory written by mydumper or dumpling (loaders.<name>.dir)",
        dir.display()
    ))
}

/// Reads the listing and `metadata` of `dir`.
pub fn read(dir: &Path, flavor: Flavor) -> Result<DumpDir> {
    let entries = std::fs::read_dir(dir).map_err(|e| bad(dir, e.to_string()))?;
    let mut out = DumpDir::default();
    let journal = Journal::read(dir).map_err(|e| bad(dir, e))?;
    if journal.as_ref().is_some_and(|j| !j.finished) {
        return Err(bad(
            dir,
            "dm's dump of it is not finished (dm-dump.json): resume the dump task first".into(),
        ));
    }
    // dm writes special characters of names encoded; other tools' names are as they are.
    let decode = |part: &str| match &journal {
        Some(_) => layout::name_of_file_part(part),
        None => Some(part.to_string()),
    };
    let table_name = |db: &str, t: &str| Some(TableName::new(decode(db)?, decode(t)?));
    out.table_positions = journal
        .iter()
        .flat_map(|j| j.tables.values())
        .map(|t| (TableName::new(&t.schema, &t.table), t.low.binlog.clone()))
        .collect();
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        if name == layout::METADATA {
            let text = std::fs::read_to_string(&path).map_err(|e| bad(dir, e.to_string()))?;
            (out.position, out.safe_until) =
                layout::parse_metadata(&text, flavor).map_err(|e| bad(dir, e))?;
            continue;
        }
        if name == layout::JOURNAL && journal.is_some() {
            continue;
        }
        let Some(stem) = name.strip_suffix(".sql") else {
            out.other.push(name);
            continue;
        };
        if let Some(db) = stem.strip_suffix("-schema-create") {
            match decode(db) {
                Some(db) => {
                    out.databases.insert(db, path);
                }
                None => out.other.push(name),
            }
        } else if let Some(t) = stem.strip_suffix("-schema") {
            match t.split_once('.') {
                Some((db, table)) if !table.contains('.') => match table_name(db, table) {
                    Some(t) => {
                        out.schemas.insert(t, path);
                    }
                    None => out.other.push(name),
                },
                _ => out.other.push(name),
            }
        } else {
            // <db>.<table> or <db>.<table>.<n>; views and triggers have their own suffixes.
            let parts: Vec<&str> = stem.split('.').collect();
            let table = match parts.as_slice() {
                [db, t] => table_name(db, t),
                [db, t, n] if n.chars().all(|c| c.is_ascii_digit()) => table_name(db, t),
                _ => None,
            };
            match table {
                Some(t)
                    if !stem.ends_with("-schema-view") && !stem.ends_with("-schema-triggers") =>
                {
                    out.data.entry(t).or_default().push(path)
                }
                _ => out.other.push(name),
            }
        }
    }
    if let Some(t) = out.data.keys().find(|t| !out.schemas.contains_key(*t)) {
        return Err(bad(
            dir,
            format!(
                "data of {t} without its schema file ({}.{}-schema.sql)",
                t.schema, t.table
            ),
        ));
    }
    Ok(out)
}
