//! The binlog stream of one source, cut into whole transactions.
//!
//! Protocol notes (verified against MariaDB 10.11, see STACK-NOTES):
//! - `@mariadb_slave_capability=4` before the dump, or MariaDB replaces GTID events by fake
//!   `BEGIN` queries; to resume by GTID, `@slave_connect_state` and no file name.
//! - MariaDB's GTID (162), GTID_LIST (163), BINLOG_CHECKPOINT (161) and ANNOTATE_ROWS (160)
//!   events are not decoded by mysql_common: GTID is read here from the raw bytes.
//! - The first (fake) ROTATE carries the 4 CRC bytes after the file name when checksums are on:
//!   it comes before any format description, so the CRC was not stripped. Fake ROTATEs after
//!   a file switch come after one and are clean.
//! - A transaction ends at XID, at a `COMMIT` query, or, for a statement outside BEGIN (DDL),
//!   at the statement itself. Only those ends are positions one may resume from.
//! - A heartbeat is asked for every few seconds so that a dead connection is noticed.

use crate::config::{Flavor, SourceConfig};
use crate::error::{DbRole, Error, Result};
use crate::position::{BinlogPos, GtidSet, Position};
use crate::rules::TableFilter;
use crate::table::{RowOp, TableName};
use futures_util::StreamExt;
use mysql_async::binlog::events::{Event, EventData, RowsEventData};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn};
use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::EventStreamReader;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Seconds between heartbeats the source sends on a quiet dump.
pub const HEARTBEAT_SECS: u64 = 5;

/// Values of one row image, by column; `None` where the image lacks the column.
pub type RowImage = Vec<Option<BinlogValue<'static>>>;

#[derive(Debug)]
pub enum EventKind {
    /// Row changes of one table: (before, after) images.
    Rows {
        table: TableName,
        op: RowOp,
        rows: Vec<(Option<RowImage>, Option<RowImage>)>,
    },
    /// A statement (DDL or other) in database `db`, run in `context` on the source.
    Query {
        db: String,
        sql: String,
        context: Box<super::StatementContext>,
        /// The statement's bytes when they are not UTF-8 (written in another client
        /// character set); `sql` then has replacement characters.
        raw: Option<Vec<u8>>,
    },
    /// An event dm cannot apply (see `event_rule`): the transaction pauses the task.
    Unsupported { what: String, message: String },
}

/// One decoded event with the position right after it.
#[derive(Debug)]
pub struct BinlogEvent {
    pub kind: EventKind,
    /// Where the event ends in the transaction's binlog file (of a compressed transaction's
    /// events: where the payload ends).
    pub pos: u64,
}

/// A whole transaction (or a fragment of a big one) ready to apply.
#[derive(Debug, Default)]
pub struct Txn {
    pub events: Vec<BinlogEvent>,
    /// Position after the transaction's (or fragment's) last event; a resume point only
    /// when `complete`.
    pub end: Position,
    /// Source time of the transaction's events (seconds since the epoch).
    pub timestamp: u32,
    /// False for a fragment of a transaction too big to hold at once; the rest follows.
    pub complete: bool,
    /// Size in the binlog of its row events: what holding it costs, about.
    pub bytes: usize,
}

/// Where a subtask reads the source's binlog: `reader` names it among the readers of the
/// source (each dump needs its own server id).
#[derive(Clone)]
pub struct BinlogOrigin {
    pub reader: String,
    /// The worker's relay log of the source, when it keeps one.
    pub relay: Option<Arc<crate::upstream::relay::Relay>>,
}

impl BinlogOrigin {
    /// The same origin for another concurrent reader of the subtask.
    pub fn sub_reader(&self, what: &str) -> BinlogOrigin {
        BinlogOrigin {
            reader: format!("{}/{what}", self.reader),
            relay: self.relay.clone(),
        }
    }
}

enum EventSource {
    Network(BinlogStream),
    Relay(crate::upstream::relay::RelayReader),
    /// Binlog files on disk, read in order.
    Files(super::binlog_files::FileEvents),
}

pub struct BinlogReader {
    source_id: String,
    flavor: Flavor,
    stream: EventSource,
    file: String,
    checksum: bool,
    /// A format description arrived on this stream: the client strips CRCs from now on.
    seen_format: bool,
    gtid: Option<GtidSet>,
    pending_gtid: Option<PendingGtid>,
    in_txn: bool,
    current: Txn,
    rows_in_txn: usize,
    bytes_in_txn: usize,
    /// Set by a heartbeat outside a transaction: the source is quiet.
    idle: bool,
    /// Past the last transaction, the end of the events after it that only frame the binlog
    /// (see `quiet_end`).
    quiet_end: Option<BinlogPos>,
    filter: TableFilter,
    /// The events of a compressed transaction (MySQL's TRANSACTION_PAYLOAD) not handled yet,
    /// the reader of their table maps, and the payload event's end (their position).
    payload: VecDeque<Event>,
    payload_reader: Option<EventStreamReader>,
    payload_end: u64,
    tables: TableVerdicts,
    /// How the rows of each table map are decoded, read once per table map.
    codecs: super::row_image::CodecCache,
}

/// Per table id of the stream, the table and whether the filter migrates it: worked out once
/// per table map, not for every rows event (the filter's online schema change rules are
/// regexes).
#[derive(Default)]
struct TableVerdicts(HashMap<u64, (TableName, bool)>);

impl TableVerdicts {
    /// Table ids change as the source reopens tables: a stream that runs for long sees many.
    const MAX: usize = 100_000;

    /// The table a rows event of `id` changes, if the filter migrates it.
    fn migrated(
        &mut self,
        id: u64,
        schema: &str,
        table: &str,
        filter: &TableFilter,
    ) -> Option<TableName> {
        let known = self
            .0
            .get(&id)
            .is_some_and(|(t, _)| t.schema == schema && t.table == table);
        if !known {
            if self.0.len() >= Self::MAX {
                self.0.clear();
            }
            let allowed = filter.allows_table(schema, table);
            self.0.insert(id, (TableName::new(schema, table), allowed));
        }
        let (t, allowed) = &self.0[&id];
        allowed.then(|| t.clone())
    }
}

#[derive(Debug, Clone)]
enum PendingGtid {
    Mariadb { domain: u32, server: u32, seq: u64 },
    Mysql { uuid: String, gno: u64 },
}

/// Rows, or bytes of row events, after which a transaction is handed over in fragments:
/// a transaction of any size streams through without being held whole.
const FRAGMENT_ROWS: usize = 20_000;
const FRAGMENT_BYTES: usize = 8 << 20;

impl BinlogReader {
    /// Opens the stream at `start` (a transaction boundary): from the relay log when the
    /// origin has one that holds `start`, else from the source. With `use_gtid` and a
    /// MariaDB GTID set, the server finds the position from the GTID; otherwise from file:pos.
    pub async fn open(
        cfg: &SourceConfig,
        flavor: Flavor,
        start: &Position,
        use_gtid: bool,
        filter: TableFilter,
        origin: &BinlogOrigin,
    ) -> Result<Self> {
        if let Some(dir) = &cfg.binlog_dir {
            let files =
                super::binlog_files::FileEvents::in_dir(dir, &start.binlog).map_err(|message| {
                    Error::Binlog {
                        source_id: cfg.source_id.clone(),
                        position: start.binlog.to_string(),
                        message,
                        retryable: false,
                    }
                })?;
            // Read by file from here on, whatever the GTIDs say.
            let gtid = start.gtid.clone().or(Some(GtidSet::empty(flavor)));
            let stream = EventSource::Files(files);
            return Ok(Self::new(
                &cfg.source_id,
                flavor,
                stream,
                false,
                start,
                gtid,
                filter,
            ));
        }
        let stream = match &origin.relay {
            // A start known only by GTID (a task's `meta`) is found by the source; the next
            // restart starts from a checkpoint with a file and reads the relay.
            Some(relay) if !start.binlog.name.is_empty() => {
                match crate::upstream::relay::RelayReader::open(relay.clone(), &start.binlog)
                    .await?
                {
                    Some(r) => Some(EventSource::Relay(r)),
                    None => {
                        tracing::warn!(source = %cfg.source_id, reader = %origin.reader, start = %start.binlog,
                        "the relay log starts after this position: reading the source directly");
                        None
                    }
                }
            }
            _ => None,
        };
        let (stream, checksum) = match stream {
            Some(s) => (s, false),
            None => {
                let server_id = cfg.reader_server_id(&origin.reader);
                let (s, checksum) = Self::dump(cfg, flavor, start, use_gtid, server_id).await?;
                (EventSource::Network(s), checksum)
            }
        };
        // A set started empty here would hold only the transactions read from now on, and a
        // resume by it would have the source send every other GTID domain (MariaDB) or every
        // earlier transaction (MySQL) again: without a set, positions go by file and offset.
        if use_gtid && start.gtid.is_none() {
            tracing::warn!(source = %cfg.source_id, start = %start.binlog,
                "enable-gtid: the GTID set at the start position is not known; resuming by binlog file and position");
        }
        Ok(Self::new(
            &cfg.source_id,
            flavor,
            stream,
            checksum,
            start,
            start.gtid.clone(),
            filter,
        ))
    }

    /// A reader of `stream`, which starts at `start` (`checksum`: its events carry CRCs the
    /// client strips once a format description came). `gtid`: the set executed at `start`,
    /// to which the transactions read are added; `None` when unknown.
    fn new(
        source_id: &str,
        flavor: Flavor,
        stream: EventSource,
        checksum: bool,
        start: &Position,
        gtid: Option<GtidSet>,
        filter: TableFilter,
    ) -> Self {
        BinlogReader {
            source_id: source_id.to_string(),
            flavor,
            stream,
            file: start.binlog.name.clone(),
            checksum,
            seen_format: false,
            gtid,
            pending_gtid: None,
            in_txn: false,
            current: Txn {
                end: start.clone(),
                ..Default::default()
            },
            rows_in_txn: 0,
            bytes_in_txn: 0,
            idle: false,
            quiet_end: None,
            filter,
            payload: VecDeque::new(),
            payload_reader: None,
            payload_end: 0,
            tables: TableVerdicts::default(),
            codecs: Default::default(),
        }
    }

    /// Reads binlog files a server wrote, in the order given, from the start of the first.
    pub fn from_files(
        source_id: &str,
        flavor: Flavor,
        files: Vec<std::path::PathBuf>,
        filter: TableFilter,
    ) -> Self {
        let first = files
            .first()
            .and_then(|f| f.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let start = Position {
            binlog: BinlogPos {
                name: first,
                pos: 4,
            },
            gtid: None,
        };
        let stream = EventSource::Files(super::binlog_files::FileEvents::new(files));
        let gtid = Some(GtidSet::empty(flavor));
        Self::new(source_id, flavor, stream, false, &start, gtid, filter)
    }

    /// Events of a transaction were read, its end not yet (a file that ends inside one).
    pub fn mid_transaction(&self) -> bool {
        self.in_txn || !self.current.events.is_empty()
    }

    /// A binlog dump from the source; also says whether events carry checksums.
    async fn dump(
        cfg: &SourceConfig,
        flavor: Flavor,
        start: &Position,
        use_gtid: bool,
        server_id: u32,
    ) -> Result<(BinlogStream, bool)> {
        let addr = cfg.from.addr();
        let map = |e| Error::db(DbRole::Source, &addr, e);
        let mut conn = crate::db::connect(&cfg.from, DbRole::Source).await?;
        let checksum = prepare_dump(&mut conn, flavor, &addr).await?;
        let by_gtid = match (&start.gtid, flavor) {
            (Some(g @ GtidSet::Mariadb(_)), Flavor::Mariadb) if use_gtid => Some(g.to_string()),
            _ => None,
        };
        if flavor == Flavor::Mariadb {
            if let Some(g) = &by_gtid {
                conn.exec_drop("SET @slave_connect_state = ?", (g,))
                    .await
                    .map_err(map)?;
                conn.query_drop("SET @slave_gtid_strict_mode = 0")
                    .await
                    .map_err(map)?;
                conn.query_drop("SET @slave_gtid_ignore_duplicates = 0")
                    .await
                    .map_err(map)?;
            }
        }
        // MySQL: the GTIDs already applied (COM_BINLOG_DUMP_GTID); the server finds the
        // first transaction missing, on another server of the topology too.
        let mysql_sids = match (&start.gtid, flavor) {
            (Some(g), Flavor::Mysql) if use_gtid => g.mysql_sids(),
            _ => None,
        };
        let request = BinlogStreamRequest::new(server_id);
        let request = if by_gtid.is_some() {
            request
        } else if let Some(sids) = mysql_sids {
            request.with_gtid().with_gtid_set(sids)
        } else {
            request
                .with_filename(start.binlog.name.as_bytes())
                .with_pos(start.binlog.pos)
        };
        let stream = conn.get_binlog_stream(request).await.map_err(map)?;
        Ok((stream, checksum))
    }

    fn err(&self, pos: u64, message: String, retryable: bool) -> Error {
        Error::Binlog {
            source_id: self.source_id.clone(),
            position: BinlogPos {
                name: self.file.clone(),
                pos,
            }
            .to_string(),
            message,
            retryable,
        }
    }

    /// The next whole transaction (or fragment). `Ok(None)` when the source has been quiet
    /// (a heartbeat came): the caller may flush and report lag 0.
    pub async fn next_txn(&mut self) -> Result<Option<Txn>> {
        loop {
            // What is left of a compressed transaction comes first.
            if let Some(ev) = self.payload.pop_front() {
                let done = self.handle(ev);
                if self.payload.is_empty() {
                    self.payload_reader = None;
                }
                match done? {
                    Some(txn) => return Ok(Some(txn)),
                    None => continue,
                }
            }
            let stream = match &mut self.stream {
                EventSource::Network(s) => s,
                EventSource::Files(f) => match f.next() {
                    Ok(Some(ev)) => {
                        if ev.new_file {
                            self.file = f.name().to_string();
                        }
                        if let Some(done) = self.handle(ev.event)? {
                            return Ok(Some(done));
                        }
                        continue;
                    }
                    // Past the last file: quiet (more files are looked for a second later).
                    Ok(None) => {
                        if f.follows_dir() {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        return Ok(None);
                    }
                    Err(message) => return Err(self.err(0, message, false)),
                },
                EventSource::Relay(r) => match r.next().await? {
                    Some(ev) => {
                        if let Some(done) = self.handle(ev)? {
                            return Ok(Some(done));
                        }
                        continue;
                    }
                    // Quiet: like a heartbeat outside a transaction.
                    None if !self.in_txn => return Ok(None),
                    None => continue,
                },
            };
            let next =
                tokio::time::timeout(Duration::from_secs(HEARTBEAT_SECS * 3), stream.next()).await;
            let ev = match next {
                Err(_) => return Err(self.err(0, "no event nor heartbeat for 15 s".into(), true)),
                Ok(None) => {
                    return Err(self.err(0, "the source closed the binlog stream".into(), true))
                }
                Ok(Some(Err(e))) => {
                    let retryable = !matches!(&e, mysql_async::Error::Server(se) if se.code == crate::error::errno::MASTER_FATAL_READING_BINLOG);
                    return Err(self.err(0, e.to_string(), retryable));
                }
                Ok(Some(Ok(ev))) => ev,
            };
            if let Some(done) = self.handle(ev)? {
                return Ok(Some(done));
            }
            if self.idle {
                self.idle = false;
                return Ok(None);
            }
        }
    }
}

pub const HEARTBEAT_EVENT: u8 = 27;
/// Asks `conn` (about to dump the binlog) for heartbeats and, from MariaDB, for its own GTID
/// events; says whether the source's events carry checksums.
pub async fn prepare_dump(conn: &mut Conn, flavor: Flavor, addr: &str) -> Result<bool> {
    let map = |e| Error::db(DbRole::Source, addr, e);
    let checksum: Option<String> = conn
        .query_first("SELECT @@GLOBAL.binlog_checksum")
        .await
        .map_err(map)?;
    conn.query_drop(format!(
        "SET @master_heartbeat_period = {}",
        HEARTBEAT_SECS * 1_000_000_000
    ))
    .await
    .map_err(map)?;
    if flavor == Flavor::Mariadb {
        conn.query_drop("SET @mariadb_slave_capability = 4")
            .await
            .map_err(map)?;
    }
    Ok(checksum.is_some_and(|c| !c.eq_ignore_ascii_case("NONE")))
}

const MARIADB_GTID: u8 = 162;
const MARIADB_GTID_FLAG_STANDALONE: u8 = 1;

/// What the reader does with an event type (the rest of docs/architecture.md, "Events dm does
/// not apply"): every type is listed; one that is not pauses the task.
enum EventRule {
    /// Decoded and handled below.
    Read,
    /// Carries nothing to apply: framing, positions, checksums, comments, statement context
    /// of statement-based events (those pause on their own).
    Irrelevant,
    /// Changes dm cannot apply: (what, why and the fix).
    Refuse(&'static str, &'static str),
}

fn event_rule(type_code: u8) -> EventRule {
    use EventRule::*;
    const STATEMENT_LOAD: &str = "LOAD DATA logged as a statement (binlog_format STATEMENT or MIXED): set binlog_format=ROW on the source";
    const COMPRESSED: &str =
        "MariaDB compressed binlog event: set log_bin_compress=OFF on the source";
    match type_code {
        // QUERY, ROTATE, XID, FORMAT_DESCRIPTION, TABLE_MAP, rows v1/v2, GTID, partial JSON rows.
        // TRANSACTION_PAYLOAD (MySQL's compressed transactions) is unpacked.
        // GTID_TAGGED (MySQL 8.4) is a GTID.
        2 | 4 | 15 | 16 | 19 | 23..=25 | 30..=33 | 39 | 40 | 42 => Read,
        // START_V3, STOP, INTVAR, RAND, USER_VAR (context of a statement), HEARTBEAT,
        // IGNORABLE, ROWS_QUERY, ANONYMOUS_GTID, PREVIOUS_GTIDS, TRANSACTION_CONTEXT,
        // VIEW_CHANGE (group replication), HEARTBEAT_V2, MariaDB ANNOTATE_ROWS,
        // BINLOG_CHECKPOINT, GTID_LIST, START_ENCRYPTION (the server sends events decrypted).
        1 | 3 | 5 | 13 | 14 | 27..=29 | 34..=37 | 41 | 160 | 161 | 163 | 164 => Irrelevant,
        6..=12 | 17 | 18 => Refuse("LOAD DATA event", STATEMENT_LOAD),
        20..=22 => Refuse(
            "pre-GA rows event",
            "rows events of MySQL 5.1.0-5.1.15 are not supported: upgrade the source",
        ),
        26 => Refuse(
            "INCIDENT event",
            "the source logged an incident (changes may be missing from its binlog): check the source's error log, repair the target from the source, then skip",
        ),
        38 => Refuse(
            "XA PREPARE event",
            "XA transactions are not supported: commit XA transactions on the source with a plain COMMIT",
        ),
        165..=171 => Refuse("compressed event", COMPRESSED),
        _ => Refuse(
            "unknown binlog event",
            "an event type dm does not know: check the source's version and settings",
        ),
    }
}

/// The key of a MySQL GTID's server in a `GtidSet`: its uuid, `uuid:tag` for a tagged GTID
/// (MySQL 8.4).
pub(super) fn gtid_key(sid: [u8; 16], tag: Option<&str>) -> String {
    match tag {
        Some(tag) => format!("{}:{tag}", uuid_text(sid)),
        None => uuid_text(sid),
    }
}

fn uuid_text(sid: [u8; 16]) -> String {
    let h: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl BinlogReader {
    /// Where the stream stands once quiet, when events that only frame the binlog followed
    /// the last transaction: a rotation to the next file, its format description and GTID
    /// list, MariaDB's binlog checkpoints. Nothing between the last transaction and here
    /// changes data, so a checkpoint may move here: a quiet source then shows the position
    /// its own status does, and a restart by file position asks for no file the source may
    /// purge while it stays quiet. `None`: the last transaction's end is where it stands.
    pub fn quiet_end(&self) -> Option<&BinlogPos> {
        self.quiet_end.as_ref()
    }

    /// Takes one event; returns a transaction when this event ended one (or filled a fragment).
    fn handle(&mut self, ev: Event) -> Result<Option<Txn>> {
        let h = ev.header();
        // Events that only frame the binlog, between transactions (see `quiet_end`).
        const STOP: u8 = 3;
        const FORMAT_DESCRIPTION: u8 = 15;
        const PREVIOUS_GTIDS: u8 = 35;
        const BINLOG_CHECKPOINT: u8 = 161;
        const GTID_LIST: u8 = 163;
        let framing = matches!(
            h.event_type_raw(),
            STOP | FORMAT_DESCRIPTION | PREVIOUS_GTIDS | BINLOG_CHECKPOINT | GTID_LIST
        );
        if framing && !self.in_txn && self.payload_reader.is_none() && h.log_pos() != 0 {
            self.quiet_end = Some(BinlogPos {
                name: self.file.clone(),
                pos: u64::from(h.log_pos()),
            });
        }
        // Events of a compressed transaction are where their payload event ends.
        let log_pos = match self.payload_reader {
            Some(_) => self.payload_end,
            None => h.log_pos() as u64,
        };
        match h.event_type_raw() {
            HEARTBEAT_EVENT => {
                if !self.in_txn {
                    self.idle = true;
                }
                return Ok(None);
            }
            MARIADB_GTID => {
                let d = ev.data();
                if d.len() < 13 {
                    return Err(self.err(log_pos, "short MariaDB GTID event".into(), false));
                }
                let seq = u64::from_le_bytes(d[0..8].try_into().unwrap_or_default());
                let domain = u32::from_le_bytes(d[8..12].try_into().unwrap_or_default());
                let standalone = d[12] & MARIADB_GTID_FLAG_STANDALONE != 0;
                self.pending_gtid = Some(PendingGtid::Mariadb {
                    domain,
                    server: h.server_id(),
                    seq,
                });
                self.in_txn = !standalone;
                return Ok(None);
            }
            t => match event_rule(t) {
                EventRule::Read => {}
                EventRule::Irrelevant => return Ok(None),
                EventRule::Refuse(what, message) => {
                    self.current.events.push(BinlogEvent {
                        kind: EventKind::Unsupported {
                            what: what.to_string(),
                            message: message.to_string(),
                        },
                        pos: log_pos,
                    });
                    return Ok((!self.in_txn).then(|| self.finish(log_pos)));
                }
            },
        }
        if h.timestamp() != 0 {
            self.current.timestamp = h.timestamp();
        }
        let data = match ev.read_data() {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(self.err(
                    log_pos,
                    format!("cannot decode event type {}: {e}", h.event_type_raw()),
                    false,
                ))
            }
        };
        match data {
            EventData::FormatDescriptionEvent(_) => {
                self.seen_format = true;
                Ok(None)
            }
            EventData::RotateEvent(r) => {
                let mut name = r.name_raw().to_vec();
                if log_pos == 0 && self.checksum && !self.seen_format && name.len() > 4 {
                    name.truncate(name.len() - 4);
                }
                self.file = String::from_utf8_lossy(&name).into_owned();
                if !self.in_txn {
                    self.current.end.binlog = BinlogPos {
                        name: self.file.clone(),
                        pos: r.position(),
                    };
                    // The server's own ROTATE at a stream's start (log_pos 0) names where the
                    // stream starts, which is no further than where it stands.
                    if log_pos != 0 {
                        self.quiet_end = Some(self.current.end.binlog.clone());
                    }
                }
                Ok(None)
            }
            EventData::GtidEvent(g) => {
                let uuid = gtid_key(g.sid(), g.tag().map(|t| t.as_str()));
                self.pending_gtid = Some(PendingGtid::Mysql { uuid, gno: g.gno() });
                Ok(None)
            }
            EventData::XidEvent(_) => Ok(Some(self.finish(log_pos))),
            EventData::TransactionPayloadEvent(p) => {
                self.unpack(&p, log_pos)?;
                Ok(None)
            }
            EventData::QueryEvent(q) => {
                let sql = q.query();
                let trimmed = sql.trim();
                if trimmed.eq_ignore_ascii_case("BEGIN") {
                    self.in_txn = true;
                    return Ok(None);
                }
                if trimmed.eq_ignore_ascii_case("COMMIT") {
                    return Ok(Some(self.finish(log_pos)));
                }
                let context = super::StatementContext::of(&q, h.timestamp(), self.flavor);
                self.current.events.push(BinlogEvent {
                    kind: EventKind::Query {
                        db: q.schema().into_owned(),
                        raw: std::str::from_utf8(q.query_raw())
                            .is_err()
                            .then(|| q.query_raw().to_vec()),
                        sql: sql.into_owned(),
                        context: Box::new(context),
                    },
                    pos: log_pos,
                });
                if self.in_txn {
                    Ok(None)
                } else {
                    Ok(Some(self.finish(log_pos)))
                }
            }
            EventData::RowsEvent(re) => {
                let op = match &re {
                    RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                        RowOp::Insert
                    }
                    RowsEventData::UpdateRowsEvent(_)
                    | RowsEventData::UpdateRowsEventV1(_)
                    | RowsEventData::PartialUpdateRowsEvent(_) => RowOp::Update,
                    RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                        RowOp::Delete
                    }
                };
                let tme = match (&self.payload_reader, &self.stream) {
                    (Some(p), _) => p.get_tme(re.table_id()),
                    (None, EventSource::Network(s)) => s.get_tme(re.table_id()),
                    (None, EventSource::Relay(r)) => r.get_tme(re.table_id()),
                    (None, EventSource::Files(f)) => f.get_tme(re.table_id()),
                };
                let Some(tme) = tme else {
                    return Err(self.err(
                        log_pos,
                        format!("rows event for unknown table id {}", re.table_id()),
                        false,
                    ));
                };
                let (schema, name) = (tme.database_name(), tme.table_name());
                let Some(table) = self
                    .tables
                    .migrated(re.table_id(), &schema, &name, &self.filter)
                else {
                    return Ok(None);
                };
                let patched = super::time2::patch(tme).map_err(|e| {
                    self.err(
                        log_pos,
                        format!("cannot decode rows of {table}: {e}"),
                        false,
                    )
                })?;
                let (tme, time2) = match &patched {
                    Some(p) => (&p.tme, p.columns.as_slice()),
                    None => (tme, &[][..]),
                };
                let mut rows = self.codecs.decode(&re, tme).map_err(|e| {
                    self.err(
                        log_pos,
                        format!("cannot decode rows of {table}: {e}"),
                        false,
                    )
                })?;
                for image in rows.iter_mut().flat_map(|(b, a)| [b, a]).flatten() {
                    for &i in time2 {
                        if let Some(v) = image.get_mut(i).and_then(Option::take) {
                            let fixed = super::time2::decode(v).map_err(|e| {
                                self.err(
                                    log_pos,
                                    format!("cannot decode rows of {table}: {e}"),
                                    false,
                                )
                            })?;
                            image[i] = Some(fixed);
                        }
                    }
                }
                self.rows_in_txn += rows.len();
                self.bytes_in_txn += h.event_size() as usize;
                self.current.events.push(BinlogEvent {
                    kind: EventKind::Rows { table, op, rows },
                    pos: log_pos,
                });
                if self.rows_in_txn >= FRAGMENT_ROWS || self.bytes_in_txn >= FRAGMENT_BYTES {
                    self.rows_in_txn = 0;
                    let bytes = std::mem::take(&mut self.bytes_in_txn);
                    // The fragment ends at its last event (not a resume point): skip lists,
                    // safe mode and high waters compare with where its changes are.
                    return Ok(Some(Txn {
                        events: std::mem::take(&mut self.current.events),
                        end: Position {
                            binlog: BinlogPos {
                                name: self.file.clone(),
                                pos: log_pos,
                            },
                            gtid: self.current.end.gtid.clone(),
                        },
                        timestamp: self.current.timestamp,
                        complete: false,
                        bytes,
                    }));
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Unpacks a compressed transaction: its events are handled next, in order, with their
    /// own table maps.
    fn unpack(
        &mut self,
        p: &mysql_common::binlog::events::TransactionPayloadEvent<'_>,
        log_pos: u64,
    ) -> Result<()> {
        let bad = |e: std::io::Error| format!("cannot unpack a compressed transaction: {e}");
        let mut data = p
            .decompressed()
            .map_err(|e| self.err(log_pos, bad(e), false))?;
        // Inside a payload, events carry no checksums (a new reader's format description).
        let mut reader = EventStreamReader::new(BinlogVersion::Version4);
        let mut events = VecDeque::new();
        loop {
            match reader.read_decompressed(&mut data) {
                Ok(Some(ev)) => events.push_back(ev),
                Ok(None) => break,
                Err(e) => return Err(self.err(log_pos, bad(e), false)),
            }
        }
        self.payload = events;
        self.payload_reader = Some(reader);
        self.payload_end = log_pos;
        Ok(())
    }

    /// Ends the current transaction at `log_pos`.
    fn finish(&mut self, log_pos: u64) -> Txn {
        if let (Some(set), Some(g)) = (&mut self.gtid, self.pending_gtid.take()) {
            match g {
                PendingGtid::Mariadb {
                    domain,
                    server,
                    seq,
                } => set.add_mariadb(domain, server, seq),
                PendingGtid::Mysql { uuid, gno } => set.add_mysql(&uuid, gno),
            }
        }
        self.in_txn = false;
        self.quiet_end = None;
        self.rows_in_txn = 0;
        let bytes = std::mem::take(&mut self.bytes_in_txn);
        let end = Position {
            binlog: BinlogPos {
                name: self.file.clone(),
                pos: log_pos,
            },
            gtid: self.gtid.clone(),
        };
        let txn = Txn {
            events: std::mem::take(&mut self.current.events),
            end: end.clone(),
            timestamp: self.current.timestamp,
            complete: true,
            bytes,
        };
        self.current.end = end;
        txn
    }
}

#[cfg(test)]
mod table_verdict_tests {
    use super::*;
    use crate::config::{BlockAllowList, TableRule};

    #[test]
    fn a_table_id_the_source_gives_another_table_is_judged_again() {
        let filter = TableFilter::new(
            &BlockAllowList {
                ignore_tables: vec![TableRule {
                    db_name: "shop".into(),
                    tbl_name: "secret".into(),
                }],
                ..Default::default()
            },
            "dm_meta",
        );
        let mut v = TableVerdicts::default();
        assert_eq!(
            v.migrated(7, "shop", "orders", &filter),
            Some(TableName::new("shop", "orders"))
        );
        assert_eq!(v.migrated(7, "shop", "secret", &filter), None);
        assert_eq!(v.migrated(7, "shop", "secret", &filter), None);
        assert_eq!(
            v.migrated(7, "shop", "orders", &filter),
            Some(TableName::new("shop", "orders"))
        );
        assert_eq!(
            v.migrated(8, "shop", "items", &filter),
            Some(TableName::new("shop", "items"))
        );
    }
}
