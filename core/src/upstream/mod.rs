//! The upstream side: the binlog stream reader (from the source, a relay log or binlog files)
//! and the relay log that keeps a source's binlog on its worker.

mod binlog;
mod binlog_files;
mod context;
mod mysql_gtid;
pub mod relay;
pub mod retention;
pub mod row_image;
mod time2;
pub mod time_search;

pub use crate::position::GtidSet;
pub use binlog::{
    prepare_dump, BinlogEvent, BinlogOrigin, BinlogReader, EventKind, RowImage, Txn,
    HEARTBEAT_EVENT, HEARTBEAT_SECS,
};
pub use context::{sql_mode_names, Baseline, BaselineRow, StatementContext};
pub use mysql_gtid::GtidScan;

use crate::error::{DbRole, Error, Result};
use crate::position::{BinlogPos, Flavor, Position};
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

/// A source's flavor: as its config names it, else as its server says.
pub async fn source_flavor(cfg: &crate::config::SourceConfig, conn: &mut Conn) -> Result<Flavor> {
    match cfg.flavor {
        Some(f) => Ok(f),
        None => detect_flavor(conn, &cfg.from.addr()).await,
    }
}

/// The statement that shows the binlog file and position being written, by the server's
/// version (from the handshake): MySQL 8.2 renamed `SHOW MASTER STATUS` to `SHOW BINARY LOG
/// STATUS` and 8.4 removed the old name; MariaDB keeps it. Both answer with the same columns
/// (File, Position, Binlog_Do_DB, Binlog_Ignore_DB and, MySQL, Executed_Gtid_Set).
pub fn binlog_status_sql(flavor: Flavor, version: (u16, u16, u16)) -> &'static str {
    match flavor {
        Flavor::Mysql if version >= (8, 2, 0) => "SHOW BINARY LOG STATUS",
        _ => "SHOW MASTER STATUS",
    }
}

/// The binlog file and position being written and, from MySQL, the GTID set executed then
/// (`Executed_Gtid_Set`, read in the same row).
pub async fn binlog_status(
    conn: &mut Conn,
    flavor: Flavor,
    addr: &str,
) -> Result<(BinlogPos, Option<String>)> {
    let sql = binlog_status_sql(flavor, conn.server_version());
    let row: Option<mysql_async::Row> = conn
        .query_first(sql)
        .await
        .map_err(|e| Error::db(DbRole::Source, addr, e))?;
    let row = row.ok_or_else(|| Error::Db {
        role: DbRole::Source,
        addr: addr.to_string(),
        message: format!("binary logging is off ({sql} is empty)"),
        errno: None,
        retryable: false,
        position: None,
    })?;
    let name: String = row.get(0).unwrap_or_default();
    let pos: u64 = row.get(1).unwrap_or_default();
    let gtid = match flavor {
        Flavor::Mysql => row.get::<Option<String>, _>(4).flatten(),
        Flavor::Mariadb => None,
    };
    Ok((BinlogPos { name, pos }, gtid))
}

/// The source's current binlog position (end of the last written event), with its GTID set.
pub async fn current_position(conn: &mut Conn, flavor: Flavor, addr: &str) -> Result<Position> {
    let (binlog, executed) = binlog_status(conn, flavor, addr).await?;
    let gtid = match flavor {
        Flavor::Mariadb => gtid_at(conn, flavor, addr, &binlog.name, binlog.pos).await?,
        Flavor::Mysql => executed.and_then(|t| GtidSet::parse(flavor, &t).ok()),
    };
    Ok(Position { binlog, gtid })
}

/// The GTID set executed up to `name:pos` (a transaction boundary): MariaDB's
/// `BINLOG_GTID_POS`; MySQL has no such function (`gtid_executed` is the set now, not at an
/// earlier position), so the file is read up to `pos` (`mysql_gtid`). `None` when the server
/// cannot tell (a MySQL file without Previous_gtids, written before 5.6) or the file cannot be
/// read (a user without REPLICATION SLAVE, a purged file): positions then go by file and
/// offset, as they did before the set was read.
pub async fn gtid_at(
    conn: &mut Conn,
    flavor: Flavor,
    addr: &str,
    name: &str,
    pos: u64,
) -> Result<Option<GtidSet>> {
    if flavor == Flavor::Mysql {
        return Ok(match mysql_gtid::at(conn, addr, name, pos).await {
            Ok(set) => set,
            Err(e) => {
                tracing::warn!(source = %addr, at = %format!("{name}:{pos}"), error = %e,
                    "the GTID set at this position cannot be read from the source's binlog: positions go by file and offset");
                None
            }
        });
    }
    let text: Option<String> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (name, pos))
        .await
        .map_err(|e| Error::db(DbRole::Source, addr, e))?;
    Ok(text.and_then(|t| GtidSet::parse(flavor, &t).ok()))
}

/// A dump of binlog file `name` from its start that ends where the file ends, on a connection
/// of its own: non-blocking and with server id 0, as `mysqlbinlog` reads a remote binlog, so
/// that no replica of the server is disconnected by it.
async fn dump_of_file(
    conn: &Conn,
    flavor: Flavor,
    addr: &str,
    name: &str,
) -> Result<mysql_async::BinlogStream> {
    let map = |e| Error::db(DbRole::Source, addr, e);
    let mut dump = Conn::new(conn.opts().clone()).await.map_err(map)?;
    prepare_dump(&mut dump, flavor, addr).await?;
    let request = mysql_async::BinlogStreamRequest::new(0)
        .with_non_blocking()
        .with_filename(name.as_bytes())
        .with_pos(4);
    dump.get_binlog_stream(request).await.map_err(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binlog_status_statement_follows_the_servers_version() {
        for (flavor, version, sql) in [
            (Flavor::Mysql, (5, 7, 44), "SHOW MASTER STATUS"),
            (Flavor::Mysql, (8, 0, 36), "SHOW MASTER STATUS"),
            (Flavor::Mysql, (8, 2, 0), "SHOW BINARY LOG STATUS"),
            (Flavor::Mysql, (8, 4, 3), "SHOW BINARY LOG STATUS"),
            (Flavor::Mysql, (9, 1, 0), "SHOW BINARY LOG STATUS"),
            (Flavor::Mariadb, (10, 11, 19), "SHOW MASTER STATUS"),
            (Flavor::Mariadb, (11, 4, 2), "SHOW MASTER STATUS"),
        ] {
            assert_eq!(binlog_status_sql(flavor, version), sql, "{version:?}");
        }
    }

    /// MySQL prints Executed_Gtid_Set with a newline after each comma.
    #[test]
    fn executed_gtid_set_as_mysql_prints_it() {
        let answer = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77,\n\
                      ce9be252-2b71-11e6-b8f4-00212844f856:1-3:tag:5";
        let set = GtidSet::parse(Flavor::Mysql, answer).unwrap();
        assert_eq!(
            set.to_string(),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77,ce9be252-2b71-11e6-b8f4-00212844f856:1-3:tag:5"
        );
    }
}
