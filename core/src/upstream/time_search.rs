//! `start-task --start-time`: the position of the first transaction the source wrote at or
//! after a time. Binlog files are searched by the time of their first transaction, then the
//! one that holds the time is read until a transaction at or after it.

use super::{gtid_at, BinlogOrigin, BinlogReader};
use crate::config::{Flavor, SourceConfig};
use crate::error::{DbRole, Error, Result};
use crate::position::{BinlogPos, Position};
use crate::rules::TableFilter;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// Seconds since the epoch of `text` (`2021-10-21 00:01:00`, `T` allowed, optionally with
/// `Z` or `+08:00`), read by the source: without an offset, in the source's time zone.
pub async fn unix_time(conn: &mut Conn, addr: &str, text: &str) -> Result<u32> {
    let bad = || {
        Error::Invalid(format!(
            "start-time `{text}` is not a date and time: write `2021-10-21 00:01:00` (in the source's time zone) or `2021-10-21T00:01:00+08:00`"
        ))
    };
    let text = text.trim();
    if text.len() < 19
        || !text
            .chars()
            .all(|c| c.is_ascii_digit() || "-: T.+Z".contains(c))
    {
        return Err(bad());
    }
    let (local, offset) = if let Some(t) = text.strip_suffix('Z') {
        (t, Some("+00:00"))
    } else if text.len() > 19 && matches!(&text[text.len() - 6..text.len() - 5], "+" | "-") {
        (&text[..text.len() - 6], Some(&text[text.len() - 6..]))
    } else {
        (text, None)
    };
    let err = |e| Error::db(DbRole::Source, addr, e);
    if let Some(offset) = offset {
        conn.exec_drop("SET time_zone = ?", (offset,))
            .await
            .map_err(|_| bad())?;
    }
    let ts: Option<Option<f64>> = conn
        .exec_first(
            "SELECT UNIX_TIMESTAMP(CAST(? AS DATETIME(6)))",
            (local.replace('T', " "),),
        )
        .await
        .map_err(err)?;
    conn.query_drop("SET time_zone = @@GLOBAL.time_zone")
        .await
        .map_err(err)?;
    match ts.flatten() {
        Some(t) if t > 0.0 => Ok(t.ceil() as u32),
        _ => Err(bad()),
    }
}

/// A reader of the source's binlog from the start of `file`, that reads no relay log.
async fn reader_at(
    cfg: &SourceConfig,
    flavor: Flavor,
    file: &str,
    filter: &TableFilter,
) -> Result<BinlogReader> {
    let start = Position {
        binlog: BinlogPos {
            name: file.to_string(),
            pos: 4,
        },
        gtid: None,
    };
    let origin = BinlogOrigin {
        reader: "start-time".into(),
        relay: None,
    };
    BinlogReader::open(cfg, flavor, &start, false, filter.clone(), &origin).await
}

/// The time of the first transaction at or after the start of `file` (`None`: none yet).
async fn first_time(
    cfg: &SourceConfig,
    flavor: Flavor,
    file: &str,
    filter: &TableFilter,
) -> Result<Option<u32>> {
    let mut reader = reader_at(cfg, flavor, file, filter).await?;
    Ok(reader.next_txn().await?.map(|t| t.timestamp))
}

/// The position of the first transaction written at or after `at` (seconds since the epoch)
/// among those `filter` selects: the end of the last one before it. The source's current
/// position when every transaction is older.
pub async fn position_at(
    conn: &mut Conn,
    cfg: &SourceConfig,
    flavor: Flavor,
    at: u32,
    filter: &TableFilter,
) -> Result<Position> {
    let addr = cfg.from.addr();
    let files = super::retention::binary_logs(conn, &addr).await?;
    if files.is_empty() {
        return Err(Error::Invalid(format!(
            "source {}: binary logging is off; start-time needs the binlog",
            cfg.source_id
        )));
    }
    // The last file whose first transaction is older than `at` (else the first file).
    let (mut lo, mut hi) = (0, files.len() - 1);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        match first_time(cfg, flavor, &files[mid], filter).await? {
            Some(t) if t < at => lo = mid,
            _ => hi = mid - 1,
        }
    }
    let mut reader = reader_at(cfg, flavor, &files[lo], filter).await?;
    let mut boundary = BinlogPos {
        name: files[lo].clone(),
        pos: 4,
    };
    // Quiet (`None`): every transaction so far is older; start at the end.
    while let Some(txn) = reader.next_txn().await? {
        if txn.timestamp >= at {
            break;
        }
        if txn.complete {
            boundary = txn.end.binlog;
        }
    }
    let gtid = gtid_at(conn, flavor, &addr, &boundary.name, boundary.pos).await?;
    Ok(Position {
        binlog: boundary,
        gtid,
    })
}
