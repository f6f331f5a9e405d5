//! A dump directory written by mydumper or dumpling: `metadata` (the source's binlog position
//! at the dump), `<db>-schema-create.sql`, `<db>.<table>-schema.sql` and the data files
//! `<db>.<table>.sql` / `<db>.<table>.<n>.sql`. Other files (views, triggers, routines,
//! compressed files) are named in the answer so nothing is left out silently.

use crate::config::Flavor;
use crate::error::{Error, Result};
use crate::schema::TableName;
use crate::upstream::{BinlogPos, GtidSet, Position};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
pub struct DumpDir {
    /// Where the dump was taken, from `metadata`.
    pub position: Option<Position>,
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
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        if name == "metadata" {
            let text = std::fs::read_to_string(&path).map_err(|e| bad(dir, e.to_string()))?;
            out.position = position_of(&text, flavor).map_err(|e| bad(dir, e))?;
            continue;
        }
        let Some(stem) = name.strip_suffix(".sql") else {
            out.other.push(name);
            continue;
        };
        if let Some(db) = stem.strip_suffix("-schema-create") {
            out.databases.insert(db.to_string(), path);
        } else if let Some(t) = stem.strip_suffix("-schema") {
            match t.split_once('.') {
                Some((db, table)) if !table.contains('.') => {
                    out.schemas.insert(TableName::new(db, table), path);
                }
                _ => out.other.push(name),
            }
        } else {
            // <db>.<table> or <db>.<table>.<n>; views and triggers have their own suffixes.
            let parts: Vec<&str> = stem.split('.').collect();
            let table = match parts.as_slice() {
                [db, t] => Some(TableName::new(*db, *t)),
                [db, t, n] if n.chars().all(|c| c.is_ascii_digit()) => {
                    Some(TableName::new(*db, *t))
                }
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

/// The position in mydumper's and dumpling's `metadata`:
/// `SHOW MASTER STATUS:` then `Log: <file>`, `Pos: <pos>`, `GTID:<set>`.
fn position_of(text: &str, flavor: Flavor) -> std::result::Result<Option<Position>, String> {
    let Some(start) = text.find("SHOW MASTER STATUS:") else {
        return Ok(None);
    };
    let mut name = None;
    let mut pos = None;
    let mut gtid = None;
    for line in text[start..].lines().skip(1) {
        let line = line.trim();
        if line.is_empty() || !line.contains(':') {
            break;
        }
        let (k, v) = line.split_once(':').unwrap_or_default();
        match k.trim() {
            "Log" => name = Some(v.trim().to_string()),
            "Pos" => pos = v.trim().parse::<u64>().ok(),
            "GTID" => gtid = Some(v.trim().to_string()).filter(|g| !g.is_empty()),
            _ => {}
        }
    }
    let (Some(name), Some(pos)) = (name, pos) else {
        return Err("metadata has SHOW MASTER STATUS without Log and Pos".into());
    };
    if !crate::relay::files::is_binlog_name(&name) {
        return Err(format!(
            "metadata names `{name}`, which is not a binlog file name"
        ));
    }
    let gtid = match gtid {
        Some(g) => Some(GtidSet::parse(flavor, &g)?),
        None => None,
    };
    Ok(Some(Position {
        binlog: BinlogPos { name, pos },
        gtid,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mydumper_metadata() {
        let text = "Started dump at: 2026-12-02 05:37:19\nSHOW MASTER STATUS:\n\tLog: mysql-bin.000001\n\tPos: 1064\n\tGTID:0-1-4\n\nFinished dump at: 2026-12-02 05:37:19\n";
        let p = position_of(text, Flavor::Mariadb).unwrap().unwrap();
        assert_eq!(p.binlog.to_string(), "mysql-bin.000001:1064");
        assert!(p.gtid.is_some());
        assert!(position_of("Started dump at: x\n", Flavor::Mariadb)
            .unwrap()
            .is_none());
        assert!(position_of(
            "SHOW MASTER STATUS:\n\tLog: ../x\n\tPos: 4\n",
            Flavor::Mariadb
        )
        .is_err());
    }
}
