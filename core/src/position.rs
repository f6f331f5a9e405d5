//! Binlog positions: `file:pos` (always known, totally ordered within one server's binlog) and
//! the GTID set of either flavor (MariaDB `domain-server-seq`, MySQL `uuid:interval`), kept so
//! that a stream can resume by GTID.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// The source server's kind: positions and GTID sets are written differently by each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Mysql,
    Mariadb,
}

/// The number at the end of a binlog file name (`mysql-bin.000042` -> 42).
pub fn binlog_index(name: &str) -> Option<u64> {
    let (_, ext) = name.rsplit_once('.')?;
    (!ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit()))
        .then(|| ext.parse().ok())
        .flatten()
}

/// Whether `name` is a plain binlog file name (`mysql-bin.000042`): no directory part, not
/// hidden, a numeric suffix. Names from a config, a checkpoint or a source's ROTATE event
/// reach the file system only through this check.
pub fn is_binlog_name(name: &str) -> bool {
    !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255
        && binlog_index(name).is_some()
}

/// A position in the source's binlog files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct BinlogPos {
    pub name: String,
    pub pos: u64,
}

impl BinlogPos {
    /// `file:pos`, as `Display` writes it.
    pub fn parse(text: &str) -> Option<BinlogPos> {
        let (name, pos) = text.trim().rsplit_once(':')?;
        Some(BinlogPos {
            name: name.to_string(),
            pos: pos.parse().ok()?,
        })
        .filter(|p| !p.name.is_empty())
    }

    /// The numeric suffix of `mysql-bin.000042`.
    fn index(&self) -> u64 {
        self.name
            .rsplit('.')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

impl Ord for BinlogPos {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.index(), self.pos).cmp(&(other.index(), other.pos))
    }
}

impl PartialOrd for BinlogPos {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.pos)
    }
}

/// A set of executed transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "flavor", content = "set", rename_all = "lowercase")]
pub enum GtidSet {
    /// Domain id -> (server id, sequence number) of the last transaction in that domain.
    Mariadb(BTreeMap<u32, (u32, u64)>),
    /// Server uuid -> executed intervals [start, end).
    Mysql(BTreeMap<String, Vec<(u64, u64)>>),
}

impl GtidSet {
    pub fn empty(flavor: Flavor) -> Self {
        match flavor {
            Flavor::Mariadb => GtidSet::Mariadb(BTreeMap::new()),
            Flavor::Mysql => GtidSet::Mysql(BTreeMap::new()),
        }
    }

    pub fn parse(flavor: Flavor, text: &str) -> Result<Self, String> {
        let mut set = GtidSet::empty(flavor);
        for part in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match &mut set {
                GtidSet::Mariadb(m) => {
                    let f: Vec<&str> = part.split('-').collect();
                    let bad = || format!("bad MariaDB GTID `{part}`");
                    if f.len() != 3 {
                        return Err(bad());
                    }
                    let d = f[0].parse().map_err(|_| bad())?;
                    let s = f[1].parse().map_err(|_| bad())?;
                    let q = f[2].parse().map_err(|_| bad())?;
                    m.insert(d, (s, q));
                }
                GtidSet::Mysql(m) => {
                    // `uuid:1-5:7:tag:1-3` (MySQL 8.4 tags name the intervals after them).
                    let mut it = part.split(':');
                    let uuid = it.next().unwrap_or("").to_ascii_lowercase();
                    let bad = || format!("bad MySQL GTID set `{part}`");
                    let mut key = uuid.clone();
                    for iv in it {
                        if !iv.starts_with(|c: char| c.is_ascii_digit()) {
                            if iv.is_empty() {
                                return Err(bad());
                            }
                            key = format!("{uuid}:{}", iv.to_ascii_lowercase());
                            continue;
                        }
                        let (a, b) = match iv.split_once('-') {
                            Some((a, b)) => (a.parse::<u64>(), b.parse::<u64>()),
                            None => (iv.parse(), iv.parse()),
                        };
                        let (a, b) = (a.map_err(|_| bad())?, b.map_err(|_| bad())?);
                        m.entry(key.clone()).or_default().push((a, b + 1));
                    }
                }
            }
        }
        Ok(set)
    }

    /// Records one executed transaction.
    pub fn add_mariadb(&mut self, domain: u32, server: u32, seq: u64) {
        if let GtidSet::Mariadb(m) = self {
            m.insert(domain, (server, seq));
        }
    }

    /// The set as COM_BINLOG_DUMP_GTID takes it (a MySQL server then sends every transaction
    /// not in it, from whatever file holds the first); tagged GTIDs in MySQL 8.4's tagged
    /// format. `None` for a MariaDB or empty set, or one with a malformed uuid or tag.
    pub fn mysql_sids(&self) -> Option<Vec<mysql_common::packets::Sid<'static>>> {
        use mysql_common::packets::{GnoInterval, Sid, Tag};
        let GtidSet::Mysql(m) = self else {
            return None;
        };
        if m.is_empty() {
            return None;
        }
        m.iter()
            .map(|(key, ivs)| {
                let (uuid, tag) = match key.split_once(':') {
                    Some((u, t)) => (u, Some(t)),
                    None => (key.as_str(), None),
                };
                let hex: String = uuid.chars().filter(|c| *c != '-').collect();
                if hex.len() != 32 {
                    return None;
                }
                let mut bytes = [0u8; 16];
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
                }
                let intervals = ivs.iter().map(|(a, b)| GnoInterval::new(*a, *b)).collect();
                let sid = Sid::new(bytes).with_intervals(intervals);
                Some(match tag {
                    Some(t) => sid.with_tag(Tag::new(t.to_string()).ok()?),
                    None => sid,
                })
            })
            .collect()
    }

    /// Records the transactions `start..end` of server `key` (`uuid` or `uuid:tag`), as a
    /// Previous_gtids event lists them.
    pub fn add_mysql_interval(&mut self, key: &str, start: u64, end: u64) {
        let GtidSet::Mysql(m) = self else {
            return;
        };
        if start >= end {
            return;
        }
        let ivs = m.entry(key.to_string()).or_default();
        ivs.push((start, end));
        ivs.sort();
        // Touching or overlapping intervals become one.
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
        for &(a, b) in ivs.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *ivs = merged;
    }

    /// `uuid` is the server's uuid, `uuid:tag` for a tagged GTID (MySQL 8.4).
    pub fn add_mysql(&mut self, uuid: &str, gno: u64) {
        if let GtidSet::Mysql(m) = self {
            let ivs = m.entry(uuid.to_string()).or_default();
            match ivs.last_mut() {
                Some(last) if last.1 == gno => last.1 = gno + 1,
                _ => {
                    ivs.push((gno, gno + 1));
                    ivs.sort();
                }
            }
        }
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidSet::Mariadb(m) => {
                let parts: Vec<String> =
                    m.iter().map(|(d, (s, q))| format!("{d}-{s}-{q}")).collect();
                f.write_str(&parts.join(","))
            }
            GtidSet::Mysql(m) => {
                // One part per server uuid: its untagged intervals, then each tag's (the
                // keys of a uuid sort together, untagged first).
                let mut parts: Vec<String> = Vec::new();
                let mut last_uuid = "";
                for (key, ivs) in m {
                    let (uuid, tag) = match key.split_once(':') {
                        Some((u, t)) => (u, Some(t)),
                        None => (key.as_str(), None),
                    };
                    let ivs: Vec<String> = ivs
                        .iter()
                        .map(|(a, b)| {
                            if b - a == 1 {
                                a.to_string()
                            } else {
                                format!("{a}-{}", b - 1)
                            }
                        })
                        .collect();
                    let text = match tag {
                        Some(t) => format!("{t}:{}", ivs.join(":")),
                        None => ivs.join(":"),
                    };
                    if uuid == last_uuid {
                        if let Some(p) = parts.last_mut() {
                            p.push(':');
                            p.push_str(&text);
                        }
                    } else {
                        parts.push(format!("{uuid}:{text}"));
                        last_uuid = uuid;
                    }
                }
                f.write_str(&parts.join(","))
            }
        }
    }
}

/// Where a stream is: binlog file and offset, and the GTID set executed up to there.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Position {
    pub binlog: BinlogPos,
    #[serde(default)]
    pub gtid: Option<GtidSet>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.gtid {
            Some(g) => write!(f, "{} (gtid {g})", self.binlog),
            None => write!(f, "{}", self.binlog),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_gtids_intervals_merge_with_the_transactions_after_them() {
        let mut set = GtidSet::empty(Flavor::Mysql);
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        set.add_mysql_interval(u, 1, 6);
        set.add_mysql_interval(u, 8, 10);
        set.add_mysql(u, 6);
        set.add_mysql_interval(u, 7, 8);
        set.add_mysql_interval(u, 3, 4);
        set.add_mysql_interval(u, 5, 5);
        assert_eq!(set.to_string(), format!("{u}:1-9"));
        set.add_mysql(u, 12);
        assert_eq!(set.to_string(), format!("{u}:1-9:12"));
    }

    #[test]
    fn a_mysql_gtid_set_becomes_the_sid_block_of_a_gtid_dump() {
        let text = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:11:batch:1-3";
        let sids = GtidSet::parse(Flavor::Mysql, text)
            .unwrap()
            .mysql_sids()
            .unwrap();
        let shown: Vec<String> = sids.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:11",
                "3e11fa47-71ca-11e1-9e33-c80aa9429562:batch:1-3"
            ]
        );
        assert!(GtidSet::empty(Flavor::Mysql).mysql_sids().is_none());
        assert!(GtidSet::parse(Flavor::Mariadb, "0-1-5")
            .unwrap()
            .mysql_sids()
            .is_none());
        assert!(GtidSet::parse(Flavor::Mysql, "3e11fa47:1-5")
            .unwrap()
            .mysql_sids()
            .is_none());
    }

    #[test]
    fn mysql_gtid_sets_with_tags_read_and_print_as_mysql_writes_them() {
        let text = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:11:batch:1-3:nightly:7,\
                    aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa:tag_only:1-2";
        let mut set = GtidSet::parse(Flavor::Mysql, text).unwrap();
        assert_eq!(set.to_string(), text.replace(' ', ""));
        set.add_mysql("3e11fa47-71ca-11e1-9e33-c80aa9429562:batch", 4);
        set.add_mysql("aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa", 1);
        assert_eq!(
            set.to_string(),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:11:batch:1-4:nightly:7,\
             aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa:1:tag_only:1-2"
                .replace(' ', "")
        );
        assert!(GtidSet::parse(Flavor::Mysql, "3e11fa47-71ca-11e1-9e33-c80aa9429562::1").is_err());
    }

    #[test]
    fn positions_order_by_file_then_offset() {
        let a = BinlogPos {
            name: "mysql-bin.000009".into(),
            pos: 900,
        };
        let b = BinlogPos {
            name: "mysql-bin.000010".into(),
            pos: 4,
        };
        assert!(a < b);
    }

    #[test]
    fn gtid_sets_round_trip() {
        let s = GtidSet::parse(Flavor::Mariadb, "0-1-9,1-2-3").unwrap();
        assert_eq!(s.to_string(), "0-1-9,1-2-3");
        let mut m =
            GtidSet::parse(Flavor::Mysql, "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7").unwrap();
        m.add_mysql("3e11fa47-71ca-11e1-9e33-c80aa9429562", 8);
        assert_eq!(
            m.to_string(),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7-8"
        );
        assert!(GtidSet::parse(Flavor::Mariadb, "0-1").is_err());
    }
}
