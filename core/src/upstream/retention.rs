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
use crate::status::BinlogRetention;
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

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
