//! How long the source keeps the binlog a subtask needs. A source removes binlog files older
//! than its expiry (`binlog_expire_logs_seconds`, or `expire_logs_days`) at each rotation.
//! A task paused over a weekend, one that lags, or a full phase that lasts longer than the
//! expiry then finds the file it resumes from gone, and only a new full copy brings it back.
//! `check-task` and the worker's watch (`worker/retention_watch.rs`) say so before it happens.
//!
//! A server removes a file once its modification time is older than the expiry. A file is
//! last written when the server rotates to the next one, so the file after it starts (its
//! Format_description event) at about that time: the needed file may go from that time plus
//! the expiry on, at the server's next rotation or `FLUSH BINARY LOGS`. The file being
//! written is never removed. A size limit (MariaDB 11.4's `max_binlog_total_size`) is not
//! taken into account.

use super::{Flavor, GtidSet};
use crate::error::{DbRole, Error, Result};
use crate::position::Position;
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::{Deserialize, Serialize};

/// Where the subtask's needed binlog file stands on its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinlogRetention {
    /// The oldest binlog file of the source a restart of the subtask reads: its checkpoint's
    /// (or the relay log's end, when the source has one).
    pub needed: String,
    /// The oldest file the source still has.
    pub oldest: String,
    /// The source no longer has `needed`: the subtask cannot resume from its checkpoint.
    pub purged: bool,
    /// Seconds until the source's expiry may remove `needed` (0: at its next rotation);
    /// `None`: it will not (the file being written, or the source has no expiry).
    pub purge_in_seconds: Option<u64>,
    /// The source's expiry, in seconds; 0: none.
    pub expire_seconds: u64,
}

/// A purge closer than this makes a running subtask warn (a paused one always does).
pub const SOON_SECS: u64 = 6 * 3600;

impl BinlogRetention {
    /// What a user should be told, if anything. `paused`: the subtask waits for a person (the
    /// clock runs against it); `full_eta`: the seconds its full phase still needs, whose
    /// incremental phase starts at `needed`.
    pub fn warning(&self, paused: bool, full_eta: Option<u64>) -> Option<String> {
        if self.purged {
            return Some(format!(
                "the source no longer has binlog file {} this subtask resumes from (its oldest is \
                 {}): it cannot resume; start the task again with a new full copy (stop-task, then \
                 start-task --remove-meta), or restore the file on the source",
                self.needed, self.oldest
            ));
        }
        let left = self.purge_in_seconds?;
        let when = if left == 0 {
            "at its next binlog rotation".to_string()
        } else {
            format!("in {}", human(left))
        };
        let fix = "raise binlog_expire_logs_seconds on the source, or enable-relay for it";
        if let Some(eta) = full_eta.filter(|eta| *eta > left) {
            return Some(format!(
                "the full phase needs about {} more, but the source may purge binlog file {} \
                 (where the incremental phase starts) {when}: {fix} now",
                human(eta),
                self.needed
            ));
        }
        if paused {
            return Some(format!(
                "paused: the source may purge binlog file {}, which this subtask resumes from, \
                 {when}; resume the task before, or {fix}",
                self.needed
            ));
        }
        (left <= SOON_SECS).then(|| {
            format!(
                "the source may purge binlog file {}, which this subtask resumes from, {when}: \
                 it must catch up before, or {fix}",
                self.needed
            )
        })
    }
}

/// `3d 4h`, `5h 12m`, `7m`.
pub fn human(secs: u64) -> String {
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{}m", m.max(1)),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// The source's binlog files, oldest first (`SHOW BINARY LOGS`).
pub async fn binary_logs(conn: &mut Conn, addr: &str) -> Result<Vec<String>> {
    conn.query_map("SHOW BINARY LOGS", |row: mysql_async::Row| {
        row.get::<String, _>(0).unwrap_or_default()
    })
    .await
    .map_err(|e| Error::db(DbRole::Source, addr, e))
}

/// The source's binlog expiry in seconds (0: none). MySQL 8 and MariaDB 10.6 have
/// `binlog_expire_logs_seconds`; 0 there defers to `expire_logs_days` (the only one before).
/// MySQL's `binlog_expire_logs_auto_purge = OFF` turns expiry off.
pub async fn expire_seconds(conn: &mut Conn, addr: &str) -> Result<u64> {
    let vars: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
             ('binlog_expire_logs_seconds', 'expire_logs_days', 'binlog_expire_logs_auto_purge')",
        )
        .await
        .map_err(|e| Error::db(DbRole::Source, addr, e))?;
    let get = |name: &str| {
        vars.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if get("binlog_expire_logs_auto_purge").is_some_and(|v| v.eq_ignore_ascii_case("OFF")) {
        return Ok(0);
    }
    let seconds = get("binlog_expire_logs_seconds")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if seconds > 0 {
        return Ok(seconds);
    }
    // MariaDB keeps days as a decimal (`0.5`).
    let days = get("expire_logs_days")
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    Ok((days * 86400.0) as u64)
}

/// Unix time at which the server began binlog file `name`: its Format_description event's.
/// Read by a dump of the file's start on a connection of its own.
async fn file_started(conn: &Conn, flavor: Flavor, addr: &str, name: &str) -> Result<u32> {
    let mut stream = super::dump_of_file(conn, flavor, addr, name).await?;
    let map = |e| Error::db(DbRole::Source, addr, e);
    while let Some(ev) = stream.next().await {
        let ev = ev.map_err(map)?;
        let header = ev.header();
        // The server's made-up ROTATE (in no file) comes first, without a time.
        if header.log_pos() != 0 && header.timestamp() != 0 {
            return Ok(header.timestamp());
        }
    }
    Err(Error::Binlog {
        source_id: addr.to_string(),
        position: format!("{name}:4"),
        message: "the binlog file has no events".into(),
        retryable: true,
    })
}

/// Whether a restart by GTID from `set` needs transactions the source no longer has. MySQL:
/// some purged GTID is not in the set. MariaDB: in some domain, the set is behind the start
/// of the oldest binlog file (its GTID state there, `BINLOG_GTID_POS(oldest, 4)`).
async fn gtids_purged(conn: &mut Conn, addr: &str, set: &GtidSet, oldest: &str) -> Result<bool> {
    let err = |e| Error::db(DbRole::Source, addr, e);
    match set {
        GtidSet::Mysql(_) => {
            let subset: Option<Option<i64>> = conn
                .exec_first(
                    "SELECT GTID_SUBSET(@@GLOBAL.gtid_purged, ?)",
                    (set.to_string(),),
                )
                .await
                .map_err(err)?;
            Ok(subset.flatten() != Some(1))
        }
        GtidSet::Mariadb(have) => {
            let start: Option<Option<String>> = conn
                .exec_first("SELECT BINLOG_GTID_POS(?, 4)", (oldest,))
                .await
                .map_err(err)?;
            let start = GtidSet::parse(Flavor::Mariadb, &start.flatten().unwrap_or_default())
                .unwrap_or(GtidSet::empty(Flavor::Mariadb));
            let GtidSet::Mariadb(start) = start else {
                return Ok(false);
            };
            Ok(start
                .iter()
                .any(|(domain, (_, seq))| have.get(domain).is_none_or(|(_, at)| at < seq)))
        }
    }
}

/// Where `needed` stands on the source behind `conn`. `by_gtid`: the subtask resumes by its
/// GTID set, so a file of another server (a failover) is no loss as long as the set's
/// transactions after it are still there.
pub async fn assess(
    conn: &mut Conn,
    flavor: Flavor,
    addr: &str,
    needed: &Position,
    by_gtid: bool,
) -> Result<BinlogRetention> {
    let files = binary_logs(conn, addr).await?;
    let expire = expire_seconds(conn, addr).await?;
    let mut report = BinlogRetention {
        needed: needed.binlog.name.clone(),
        oldest: files.first().cloned().unwrap_or_default(),
        purged: false,
        purge_in_seconds: None,
        expire_seconds: expire,
    };
    let Some(at) = files.iter().position(|f| *f == needed.binlog.name) else {
        // Older than the oldest (purged), or a file this server never wrote (RESET MASTER,
        // another server).
        report.purged = match needed.gtid.as_ref().filter(|_| by_gtid) {
            Some(set) => gtids_purged(conn, addr, set, &report.oldest).await?,
            None => true,
        };
        return Ok(report);
    };
    if expire == 0 || at + 1 == files.len() {
        return Ok(report);
    }
    let next_started = file_started(conn, flavor, addr, &files[at + 1]).await?;
    let now: Option<u64> = conn
        .query_first("SELECT UNIX_TIMESTAMP()")
        .await
        .map_err(|e| Error::db(DbRole::Source, addr, e))?;
    let now = now.unwrap_or(0);
    report.purge_in_seconds = Some((u64::from(next_started) + expire).saturating_sub(now));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(purge_in: Option<u64>) -> BinlogRetention {
        BinlogRetention {
            needed: "bin.000007".into(),
            oldest: "bin.000003".into(),
            purged: false,
            purge_in_seconds: purge_in,
            expire_seconds: 86400,
        }
    }

    #[test]
    fn warns_when_the_needed_file_goes_soon_or_is_gone() {
        // Safe for long: a running subtask says nothing, a paused one says when.
        assert_eq!(at(Some(3 * 86400)).warning(false, None), None);
        let paused = at(Some(3 * 86400 + 4 * 3600)).warning(true, None).unwrap();
        assert!(
            paused.contains("bin.000007") && paused.contains("in 3d 4h"),
            "{paused}"
        );
        // Never purged: nothing to say, paused or not.
        assert_eq!(at(None).warning(true, Some(1 << 40)), None);
        let soon = at(Some(2 * 3600 + 5 * 60)).warning(false, None).unwrap();
        assert!(
            soon.contains("in 2h 5m") && soon.contains("catch up"),
            "{soon}"
        );
        let due = at(Some(0)).warning(false, None).unwrap();
        assert!(due.contains("at its next binlog rotation"), "{due}");
        // A full phase that ends after the purge.
        let full = at(Some(86400)).warning(false, Some(2 * 86400)).unwrap();
        assert!(full.contains("the full phase needs about 2d 0h"), "{full}");
        assert_eq!(at(Some(86400)).warning(false, Some(3600)), None);
        let gone = BinlogRetention {
            purged: true,
            ..at(None)
        }
        .warning(false, None)
        .unwrap();
        assert!(
            gone.contains("no longer has binlog file bin.000007") && gone.contains("bin.000003")
        );
    }
}
