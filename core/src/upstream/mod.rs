//! The upstream side: binlog positions of both flavors and the binlog stream reader.

mod binlog;
mod binlog_files;
mod context;
mod position;
mod time2;
pub mod time_search;

pub use binlog::{
    prepare_dump, BinlogEvent, BinlogOrigin, BinlogReader, EventKind, RowImage, RowOp, Txn,
    HEARTBEAT_EVENT, HEARTBEAT_SECS,
};
pub use context::{sql_mode_names, Baseline, BaselineRow, StatementContext};
pub use position::{BinlogPos, GtidSet, Position};

use crate::config::Flavor;
use crate::error::{DbRole, Error, Result};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// The flavor of a live server, from its version string.
pub async fn detect_flavor(conn: &mut Conn, addr: &str) -> Result<Flavor> {
    let v: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| Error::db(DbRole::Source, addr, e))?;
    Ok(
        if v.unwrap_or_default()
            .to_ascii_lowercase()
            .contains("mariadb")
        {
            Flavor::Mariadb
        } else {
            Flavor::Mysql
        },
    )
}

/// The source's current binlog position (end of the last written event), with its GTID set.
pub async fn current_position(conn: &mut Conn, flavor: Flavor, addr: &str) -> Result<Position> {
    let map = |e| Error::db(DbRole::Source, addr, e);
    let row: Option<mysql_async::Row> =
        conn.query_first("SHOW MASTER STATUS").await.map_err(map)?;
    let row = row.ok_or_else(|| Error::Db {
        role: DbRole::Source,
        addr: addr.to_string(),
        message: "binary logging is off (SHOW MASTER STATUS is empty)".into(),
        errno: None,
        retryable: false,
        position: None,
    })?;
    let name: String = row.get(0).unwrap_or_default();
    let pos: u64 = row.get(1).unwrap_or_default();
    let gtid = match flavor {
        Flavor::Mariadb => gtid_at(conn, flavor, addr, &name, pos).await?,
        // The set executed now is the set at the position just read (MySQL can tell no other).
        Flavor::Mysql => {
            let text: Option<String> = conn
                .query_first("SELECT @@GLOBAL.gtid_executed")
                .await
                .map_err(map)?;
            text.and_then(|t| GtidSet::parse(flavor, &t).ok())
        }
    };
    Ok(Position {
        binlog: BinlogPos { name, pos },
        gtid,
    })
}

/// The GTID set executed up to `name:pos`, when the server can tell: MariaDB's
/// `BINLOG_GTID_POS`. MySQL has no such function (`gtid_executed` is the set now, not at an
/// earlier position, and using it would mark transactions after `pos` as done), so `None`.
pub async fn gtid_at(
    conn: &mut Conn,
    flavor: Flavor,
    addr: &str,
    name: &str,
    pos: u64,
) -> Result<Option<GtidSet>> {
    if flavor == Flavor::Mysql {
        return Ok(None);
    }
    let text: Option<String> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (name, pos))
        .await
        .map_err(|e| Error::db(DbRole::Source, addr, e))?;
    Ok(text.and_then(|t| GtidSet::parse(flavor, &t).ok()))
}
