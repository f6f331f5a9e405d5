//! The layout of a dump directory, shared by the writer (`task-mode: dump`) and the reader
//! (`task-mode: load`): mydumper's file names, its `metadata` text, and dm's journal
//! (`dm-dump.json`), which records the tables written so far so that a dump resumes after a
//! crash and a loader never imports a dump that is not finished.

use crate::config::Flavor;
use crate::position::{BinlogPos, GtidSet, Position};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// dm's journal of a dump it writes.
pub const JOURNAL: &str = "dm-dump.json";
/// mydumper's and dumpling's file with the dump's binlog position.
pub const METADATA: &str = "metadata";
/// The header of dm's section of `metadata` for a dump whose tables were read at different
/// positions (separate snapshots, or a resumed dump): replicating from the first position
/// must stay in safe mode up to this one.
const SAFE_MODE_HEADER: &str = "dm safe mode until:";

/// A database or table name as part of a file name: as it is, except the characters that
/// would break the `<db>.<table>.<n>.sql` pattern or leave the directory (`.`, `/`, `\`,
/// `@`, control characters), written `@hh` per byte.
pub fn file_part(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '.' | '/' | '\\' | '@') || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "@{b:02x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The name `file_part` wrote; `None` for a part it cannot have written.
pub fn name_of_file_part(part: &str) -> Option<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'@' {
            let hex = part.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One table written whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDone {
    pub schema: String,
    pub table: String,
    /// Its schema file and data files, in order.
    pub files: Vec<String>,
    pub rows: u64,
    /// The snapshot's position (or the position read just before it: `read_by`).
    pub low: Position,
    /// A position after the snapshot: `low` when the snapshot's own position is known.
    pub high: BinlogPos,
}

/// What a dump directory dm writes holds so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub task: String,
    pub source_id: String,
    pub flavor: Option<Flavor>,
    /// Key: `db.table` (names as they are).
    pub tables: BTreeMap<String, TableDone>,
    /// Every selected table is written and `metadata` too.
    pub finished: bool,
    /// When the dump was started first (UTC, `YYYY-MM-DD hh:mm:ss`).
    pub started: String,
}

impl Journal {
    pub fn read(dir: &Path) -> Result<Option<Journal>, String> {
        let path = dir.join(JOURNAL);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::durable::write_atomically(&dir.join(JOURNAL), &bytes)
    }

    /// Where replication from the dump starts (the lowest position a table was read at) and
    /// up to where it must stay in safe mode (the highest), when that is further.
    pub fn positions(&self) -> Option<(Position, Option<BinlogPos>)> {
        let low = self.tables.values().map(|t| &t.low).min_by(|a, b| {
            a.binlog
                .partial_cmp(&b.binlog)
                .unwrap_or(std::cmp::Ordering::Equal)
        })?;
        let high = self
            .tables
            .values()
            .map(|t| &t.high)
            .max_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal))?;
        Some((low.clone(), (*high > low.binlog).then(|| high.clone())))
    }
}

/// `metadata` as mydumper and dumpling write it (myloader and TiDB DM's loader read it), with
/// dm's safe-mode section when the tables were read at different positions.
pub fn metadata_text(
    started: &str,
    finished: &str,
    at: Option<&Position>,
    safe_until: Option<&BinlogPos>,
) -> String {
    let mut out = format!("Started dump at: {started}\n");
    if let Some(at) = at {
        let gtid = at
            .gtid
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let _ = write!(
            out,
            "SHOW MASTER STATUS:\n\tLog: {}\n\tPos: {}\n\tGTID:{gtid}\n\n",
            at.binlog.name, at.binlog.pos
        );
    }
    if let Some(until) = safe_until {
        let _ = write!(
            out,
            "{SAFE_MODE_HEADER}\n\tLog: {}\n\tPos: {}\n\n",
            until.name, until.pos
        );
    }
    let _ = writeln!(out, "Finished dump at: {finished}");
    out
}

/// The `Log:`/`Pos:`/`GTID:` lines following `header`.
fn section(text: &str, header: &str) -> Result<Option<(BinlogPos, Option<String>)>, String> {
    let Some(start) = text.find(header) else {
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
        return Err(format!("metadata has `{header}` without Log and Pos"));
    };
    if !crate::position::is_binlog_name(&name) {
        return Err(format!(
            "metadata names `{name}`, which is not a binlog file name"
        ));
    }
    Ok(Some((BinlogPos { name, pos }, gtid)))
}

/// The dump's position in `metadata` (`SHOW MASTER STATUS:` then `Log: <file>`, `Pos: <pos>`,
/// `GTID:<set>`) and dm's safe-mode end, if any.
pub fn parse_metadata(
    text: &str,
    flavor: Flavor,
) -> Result<(Option<Position>, Option<BinlogPos>), String> {
    let at = match section(text, "SHOW MASTER STATUS:")? {
        Some((binlog, gtid)) => Some(Position {
            binlog,
            gtid: gtid.map(|g| GtidSet::parse(flavor, &g)).transpose()?,
        }),
        None => None,
    };
    let until = section(text, SAFE_MODE_HEADER)?.map(|(p, _)| p);
    Ok((at, until))
}

/// Now, as mydumper writes times in `metadata`.
pub fn now_text() -> String {
    crate::datum::timestamp_text(crate::status::now_secs() as i64, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_file_parts() {
        for name in ["plain", "my-db", "a.b", "../x", "a@b", "tab\tle", "übung"] {
            let part = file_part(name);
            assert!(!part.contains(['.', '/', '\t']), "{part}");
            assert_eq!(name_of_file_part(&part).as_deref(), Some(name));
        }
        assert_eq!(file_part("a.b"), "a@2eb");
        assert_eq!(name_of_file_part("a@zz"), None);
    }

    #[test]
    fn mydumper_metadata() {
        let text = "Started dump at: 2026-12-02 05:37:19\nSHOW MASTER STATUS:\n\tLog: mysql-bin.000001\n\tPos: 1064\n\tGTID:0-1-4\n\nFinished dump at: 2026-12-02 05:37:19\n";
        let (p, until) = parse_metadata(text, Flavor::Mariadb).unwrap();
        let p = p.unwrap();
        assert_eq!(p.binlog.to_string(), "mysql-bin.000001:1064");
        assert!(p.gtid.is_some());
        assert!(until.is_none());
        assert!(parse_metadata("Started dump at: x\n", Flavor::Mariadb)
            .unwrap()
            .0
            .is_none());
        assert!(parse_metadata(
            "SHOW MASTER STATUS:\n\tLog: ../x\n\tPos: 4\n",
            Flavor::Mariadb
        )
        .is_err());
    }

    #[test]
    fn metadata_written_is_read_back_with_the_safe_mode_end() {
        let at = Position {
            binlog: BinlogPos {
                name: "mysql-bin.000002".into(),
                pos: 400,
            },
            gtid: Some(GtidSet::parse(Flavor::Mariadb, "0-1-9").unwrap()),
        };
        let until = BinlogPos {
            name: "mysql-bin.000003".into(),
            pos: 4,
        };
        let text = metadata_text("a", "b", Some(&at), Some(&until));
        assert!(text.starts_with("Started dump at: a\nSHOW MASTER STATUS:\n\tLog: mysql-bin.000002\n\tPos: 400\n\tGTID:0-1-9\n\n"), "{text}");
        let (p, u) = parse_metadata(&text, Flavor::Mariadb).unwrap();
        assert_eq!(p, Some(at));
        assert_eq!(u, Some(until));
    }
}
