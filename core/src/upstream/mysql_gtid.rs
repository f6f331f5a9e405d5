//! The GTID set a MySQL source had executed at a position of its binlog. MySQL has no
//! `BINLOG_GTID_POS`: the set is the file's Previous_gtids event (every transaction of the
//! files before it) plus the GTID of each transaction of the file before the position, read
//! from the file's start (TiDB DM does the same). A start by file and position gets a set to
//! resume by, and to fail over to another server of the topology by.

use super::binlog::gtid_key;
use crate::error::{DbRole, Error, Result};
use crate::position::{Flavor, GtidSet};
use futures_util::StreamExt;
use mysql_async::Conn;
use mysql_common::binlog::events::{Event, EventData};

const ROTATE: u8 = 4;
const GTID: u8 = 33;
const PREVIOUS_GTIDS: u8 = 35;
const GTID_TAGGED: u8 = 42;

/// The events of one binlog file, from its start, folded into the set executed at `upto` (a
/// transaction boundary of that file).
pub struct GtidScan {
    upto: u64,
    set: Option<GtidSet>,
}

impl GtidScan {
    pub fn new(upto: u64) -> Self {
        GtidScan { upto, set: None }
    }

    /// Takes the file's next event; false once its events pass `upto` or the file ends.
    pub fn feed(&mut self, ev: &Event) -> std::result::Result<bool, String> {
        let header = ev.header();
        let end = u64::from(header.log_pos());
        let kind = header.event_type_raw();
        // An event the server makes up for the stream (its first ROTATE) is in no file.
        if end == 0 {
            return Ok(true);
        }
        if end > self.upto || kind == ROTATE {
            return Ok(false);
        }
        if !matches!(kind, PREVIOUS_GTIDS | GTID | GTID_TAGGED) {
            return Ok(true);
        }
        let data = ev
            .read_data()
            .map_err(|e| format!("event type {kind} ending at {end}: {e}"))?;
        match data {
            Some(EventData::PreviousGtidsEvent(p)) => {
                let mut set = GtidSet::empty(Flavor::Mysql);
                for sid in p.sids() {
                    let key = gtid_key(sid.uuid(), sid.tag().map(|t| t.as_str()));
                    for iv in sid.intervals() {
                        set.add_mysql_interval(&key, iv.start(), iv.end());
                    }
                }
                self.set = Some(set);
            }
            Some(EventData::GtidEvent(g)) => {
                // A file of MySQL 5.6 or later starts with Previous_gtids; without it the
                // set stays unknown.
                if let Some(set) = &mut self.set {
                    set.add_mysql(&gtid_key(g.sid(), g.tag().map(|t| t.as_str())), g.gno());
                }
            }
            _ => {}
        }
        Ok(true)
    }

    /// The set at `upto`; `None` when the file has no Previous_gtids event.
    pub fn finish(self) -> Option<GtidSet> {
        self.set
    }
}

/// The set the MySQL server behind `conn` had executed at `name:pos`: its binlog file read
/// from the start by a dump of its own (server id 0 and non-blocking, as `mysqlbinlog` reads
/// a remote binlog: no replica of the server is disconnected by it).
pub async fn at(conn: &Conn, addr: &str, name: &str, pos: u64) -> Result<Option<GtidSet>> {
    let map = |e| Error::db(DbRole::Source, addr, e);
    let mut stream = super::dump_of_file(conn, Flavor::Mysql, addr, name).await?;
    let mut scan = GtidScan::new(pos);
    while let Some(ev) = stream.next().await {
        let ev = ev.map_err(map)?;
        let more = scan.feed(&ev).map_err(|message| Error::Binlog {
            source_id: addr.to_string(),
            position: format!("{name}:{pos}"),
            message: format!("reading the GTIDs before the position: {message}"),
            retryable: true,
        })?;
        if !more {
            break;
        }
    }
    // The dump connection is dropped (closed) with the stream.
    drop(stream);
    Ok(scan.finish())
}
