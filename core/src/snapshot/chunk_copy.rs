//! Copy of one chunk: a snapshot of its own, the rows of its key range streamed into one target
//! transaction, and in that transaction the record that the chunk is done with the binlog
//! position of its snapshot. A kill leaves a chunk either wholly in (and recorded) or not at
//! all.

use super::chunk::{Bounds, ChunkKey};
use super::indexes;
use crate::budget::{ByteBudget, Claim};
use crate::checkpoint::ChunkRecord;
use crate::config::{DbConfig, Flavor, SourceConfig};
use crate::context::SubtaskContext;
use crate::datum::Datum;
use crate::db::quote_ident;
use crate::db::quote_str;
use crate::error::{errno, DbRole, Error, Result};
use crate::hooks::HookRow;
use crate::position::{BinlogPos, GtidSet, Position};
use crate::rules::{Routed, RowOrigin, RowRules};
use crate::schema::load_table;
use crate::status::Progress;
use crate::table::RowOp;
use crate::table::{ColumnKind, Table, TableName};
use bytes::Bytes;
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Statement size that keeps well under the default max_allowed_packet (16 MiB).
const BATCH_BYTES: usize = 2 << 20;
const BATCH_ROWS: usize = 5_000;
/// Largest packet of `LOAD DATA LOCAL` data sent at once.
const INFILE_PIECE: usize = 1 << 20;

/// The server refuses `LOAD DATA LOCAL` (MySQL 5.x/8, MariaDB).
const NOT_ALLOWED_COMMAND: u16 = 1148;
const LOCAL_INFILE_DISABLED: u16 = 3948;
const LOCAL_INFILE_CAPABILITY: u16 = 4166;

/// Copier `i` of a subtask holds target lock `COPIER_LOCKS + i` (`session_lock::lock_name`) while
/// it copies: a worker that takes the source over ends the sessions of a frozen old owner,
/// and their open chunk transactions with their row locks, at once.
pub const COPIER_LOCKS: usize = 2_000_000;
/// Copier slots an owner checks for sessions of an earlier owner.
pub const MAX_COPIERS: usize = 128;

/// A target session for loading, holding the copier's lock: the first session of a copier
/// ends whoever holds it, a reconnect only takes it if it is free (else the source has a new
/// owner). `unique_checks` stays on: rows of different chunks may hold the same unique
/// secondary key value (it moved between their snapshots), and with the checks off InnoDB may
/// let both into the index instead of replacing the older row.
async fn connect_target(
    target: &DbConfig,
    lock: &crate::session_lock::SessionLock,
    first: bool,
) -> Result<Conn> {
    let addr = target.addr();
    let mut tgt = crate::db::connect(target, DbRole::Target).await?;
    if first {
        crate::session_lock::take_lock(&mut tgt, &addr, lock).await?;
    } else {
        crate::session_lock::reclaim_lock(&mut tgt, &addr, lock).await?;
    }
    Ok(tgt)
}

/// How rows reach the target.
#[derive(Clone)]
enum Mode {
    /// Multi-row INSERTs starting with this head.
    Insert(String),
    /// One `LOAD DATA LOCAL INFILE` statement reading the stream of rows.
    Load(String),
}

/// `LOAD DATA LOCAL INFILE` of tab-separated raw bytes into the `written` columns; BIT and
/// spatial values go through variables (a field cannot be their binary form directly).
fn load_data_sql(
    table: &Table,
    written: &[usize],
    into: &TableName,
    extra: &[(String, String)],
    verb: &str,
) -> String {
    let mut cols = Vec::with_capacity(written.len());
    let mut sets: Vec<String> = extra
        .iter()
        .map(|(c, v)| format!("{} = {}", quote_ident(c), quote_str(v)))
        .collect();
    for &i in written {
        let c = &table.columns[i];
        let name = quote_ident(&c.name);
        // A JSON document's bytes get their character set (MySQL refuses binary JSON).
        if c.kind() == ColumnKind::Json {
            cols.push(format!("@v{i}"));
            sets.push(format!("{name} = CONVERT(@v{i} USING utf8mb4)"));
            continue;
        }
        let via_var = c.kind() == ColumnKind::Bit
            || matches!(
                c.data_type.as_str(),
                "geometry"
                    | "point"
                    | "linestring"
                    | "polygon"
                    | "multipoint"
                    | "multilinestring"
                    | "multipolygon"
                    | "geometrycollection"
            );
        if via_var {
            cols.push(format!("@v{i}"));
            sets.push(format!("{name} = @v{i}"));
        } else {
            cols.push(name);
        }
    }
    let set = if sets.is_empty() {
        String::new()
    } else {
        format!(" SET {}", sets.join(", "))
    };
    format!(
        "LOAD DATA LOCAL INFILE 'dm-chunk' {verb}INTO TABLE {} CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({}){set}",
        into.quoted(),
        cols.join(", ")
    )
}

/// Hands a batch to the writer once its bytes fit the budget; false when the writer is gone.
async fn hand_over(tx: &mpsc::Sender<(Bytes, Claim)>, budget: &ByteBudget, batch: Bytes) -> bool {
    let claim = budget.claim(batch.len()).await;
    tx.send((batch, claim)).await.is_ok()
}

/// Writes the batches coming over `rx` in the open transaction of `tgt`; gives `tgt` back
/// with the number of rows the target took.
///
/// `LOAD DATA LOCAL` turns what would be errors (a value the column cannot hold, a duplicate
/// key) into warnings and skipped rows: any warning is an error here, so that nothing is
/// changed or dropped in silence.
async fn write_batches(
    mut tgt: Conn,
    mut rx: mpsc::Receiver<(Bytes, Claim)>,
    mode: Mode,
    addr: String,
) -> Result<(Conn, u64)> {
    let te = |e| Error::db(DbRole::Target, &addr, e);
    let mut taken = 0;
    match mode {
        Mode::Insert(_) => {
            while let Some((sql, _claim)) = rx.recv().await {
                tgt.query_drop(String::from_utf8_lossy(&sql).into_owned())
                    .await
                    .map_err(te)?;
                taken += tgt.affected_rows();
            }
        }
        Mode::Load(sql) => {
            // Sent in pieces the target's max_allowed_packet takes, whatever a row's size; a
            // batch's bytes are given back once it is sent.
            let start = (rx, Bytes::new(), None::<Claim>);
            let rows =
                futures_util::stream::unfold(start, |(mut rx, mut rest, mut claim)| async move {
                    if rest.is_empty() {
                        drop(claim.take());
                        let (batch, held) = rx.recv().await?;
                        (rest, claim) = (batch, Some(held));
                    }
                    let piece = rest.split_to(rest.len().min(INFILE_PIECE));
                    Some((Ok(piece), (rx, rest, claim)))
                });
            tgt.set_infile_handler(async move { Ok(rows.boxed()) });
            tgt.query_drop(sql).await.map_err(te)?;
            taken = tgt.affected_rows();
            if tgt.get_warnings() > 0 {
                let first: Option<(String, u16, String)> =
                    tgt.query_first("SHOW WARNINGS").await.map_err(te)?;
                let (level, code, message) = first.unwrap_or_default();
                return Err(Error::Db {
                    role: DbRole::Target,
                    addr,
                    message: format!(
                        "LOAD DATA reported {} warning(s), first: {level} {code}: {message}",
                        tgt.get_warnings()
                    ),
                    errno: Some(code),
                    retryable: false,
                    position: None,
                });
            }
        }
    }
    Ok((tgt, taken))
}

/// What a chunk copy found.
pub enum Copied {
    /// The rows are in; the table as read in the chunk's snapshot.
    Done(Table),
    /// The table is gone from the source.
    Gone,
    /// The source table's columns differ from the target table made when it was planned:
    /// the table's copy must start over.
    Changed,
}

/// How the chunks of one table are read and where they go.
pub struct CopyPlan {
    /// The key the table is chunked by; `None`: one chunk.
    pub key: Option<ChunkKey>,
    /// Column names the table had when it was planned; a chunk that finds others starts the
    /// table over.
    pub columns: Vec<String>,
    /// Where a route sends the rows.
    pub routed: Option<Routed>,
    /// Whether the table may lack secondary indexes the source has, to be added after its
    /// last chunk.
    pub indexes_deferred: bool,
}

/// Rows handed to the row rules (expression filters, plugins) at once in the full phase.
const RULES_BATCH_ROWS: usize = 512;

/// The batch being built: multi-row INSERT text or LOAD DATA lines.
struct Batcher<'a> {
    mode: &'a Mode,
    /// `kinds[k]`: the kind of the k-th written column.
    kinds: &'a [ColumnKind],
    extra_values: &'a str,
    text: String,
    buf: Vec<u8>,
    rows: u64,
}

impl Batcher<'_> {
    /// Appends one row (a VALUES tuple, or a LOAD DATA line); the batch with its row count
    /// when it is full.
    fn push(&mut self, datums: impl Iterator<Item = Datum>) -> Option<(Bytes, u64)> {
        let size = match self.mode {
            Mode::Insert(head) => {
                let mut row = String::from("(");
                for (k, d) in datums.enumerate() {
                    if k > 0 {
                        row.push(',');
                    }
                    d.write_sql_for(self.kinds[k], &mut row);
                }
                row.push_str(self.extra_values);
                row.push(')');
                // A big row goes in a statement of its own: the statement stays below the
                // target's max_allowed_packet whenever the row alone does.
                let full = (self.rows > 0 && self.text.len() + row.len() > BATCH_BYTES)
                    .then(|| self.take());
                let text = &mut self.text;
                text.push_str(if self.rows == 0 { head } else { "," });
                text.push_str(&row);
                self.rows += 1;
                if full.is_some() {
                    return full;
                }
                text.len()
            }
            Mode::Load(_) => {
                let buf = &mut self.buf;
                for (k, d) in datums.enumerate() {
                    if k > 0 {
                        buf.push(b'\t');
                    }
                    match d {
                        // A field "0" would be the year 2000.
                        Datum::Int(y) if self.kinds[k] == ColumnKind::Year => {
                            buf.extend_from_slice(format!("{y:04}").as_bytes())
                        }
                        d => d.write_tsv(buf),
                    }
                }
                buf.push(b'\n');
                self.rows += 1;
                buf.len()
            }
        };
        (size >= BATCH_BYTES || self.rows as usize >= BATCH_ROWS).then(|| self.take())
    }

    /// What is left, if anything.
    fn rest(&mut self) -> Option<(Bytes, u64)> {
        (self.rows > 0).then(|| self.take())
    }

    fn take(&mut self) -> (Bytes, u64) {
        let batch = match self.mode {
            Mode::Insert(_) => Bytes::from(std::mem::take(&mut self.text).into_bytes()),
            Mode::Load(_) => Bytes::from(std::mem::replace(
                &mut self.buf,
                Vec::with_capacity(BATCH_BYTES + 4096),
            )),
        };
        (batch, std::mem::take(&mut self.rows))
    }
}

/// Rows on their way to the writer: batched, handed over when a batch is full, and counted
/// in the progress and the chunk's own counts as they go.
struct Outbox<'a> {
    batcher: Batcher<'a>,
    tx: mpsc::Sender<(Bytes, Claim)>,
    budget: ByteBudget,
    progress: &'a Progress,
    /// (rows, bytes) of the chunk handed over so far.
    counted: &'a mut (u64, u64),
    table_key: String,
}

impl Outbox<'_> {
    /// Adds a row; false when the writer is gone (it failed).
    async fn push(&mut self, datums: impl Iterator<Item = Datum>) -> bool {
        match self.batcher.push(datums) {
            Some(batch) => self.send(batch).await,
            None => true,
        }
    }

    async fn send(&mut self, (batch, n): (Bytes, u64)) -> bool {
        self.progress.throttle.take(n).await;
        let len = batch.len() as u64;
        self.counted.0 += n;
        self.counted.1 += len;
        self.progress.rows_loaded.fetch_add(n, Ordering::Relaxed);
        self.progress.add_table_rows(&self.table_key, n, len);
        hand_over(&self.tx, &self.budget, batch).await
    }

    /// Hands over the last, partly filled batch.
    async fn finish(mut self) {
        if let Some(batch) = self.batcher.rest() {
            self.send(batch).await;
        }
    }
}

/// A source row as the filters see it: by the table's columns, generated ones (not read)
/// NULL.
fn full_image(table: &Table, written: &[usize], row: mysql_async::Row) -> Vec<Datum> {
    let mut full = vec![Datum::Null; table.columns.len()];
    for (&ci, v) in written.iter().zip(row.unwrap()) {
        full[ci] = Datum::from_value(&table.columns[ci], v);
    }
    full
}

/// Runs full images (as inserts) through the subtask's row rules; the rows they keep, by
/// the written columns.
fn rules_pass(
    rules: &RowRules,
    table: &Table,
    written: &[usize],
    held: Vec<HookRow>,
) -> Result<Vec<Vec<Datum>>> {
    let kept = rules.run(table, held, RowOrigin::Snapshot)?;
    Ok(kept
        .into_iter()
        .filter_map(|r| {
            let full = r.after?;
            Some(written.iter().map(|&ci| full[ci].clone()).collect())
        })
        .collect())
}

/// What opening a chunk's snapshot found.
enum Opened {
    /// The table as the snapshot has it, and the snapshot's position.
    Table(Box<(Table, Position)>),
    /// The table is gone (dropped since it was planned).
    Gone,
    /// Its columns changed since it was planned: planned again.
    Changed,
}

/// The statements of one chunk.
struct ChunkSql {
    /// What reads the chunk's rows on the source.
    select: String,
    /// How the rows are written to the target.
    mode: Mode,
    /// Values of the columns a route adds, written after each row's own.
    extra_values: String,
    /// The table's columns that are read and written (not generated ones).
    written: Vec<usize>,
    /// Rows of shards merged into one table: plain inserts, each must be taken.
    merged: bool,
}

/// A reader session on the source and a writer session on the target, reused chunk after
/// chunk.
pub struct ChunkCopier {
    ctx: Arc<SubtaskContext>,
    src: Conn,
    tgt: Option<Conn>,
    /// The target takes `LOAD DATA LOCAL INFILE` (else multi-row INSERTs).
    load_data: bool,
    /// (rows, bytes) of the current chunk counted in the progress so far.
    counted: (u64, u64),
    /// This copier's target lock (see `COPIER_LOCKS`).
    lock: crate::session_lock::SessionLock,
    /// Only rows satisfying this SQL condition are copied (`mydumpers.*.where`).
    pub row_condition: Option<String>,
    /// Each snapshot is bracketed by the position read before it (`Consistency::bracketed`).
    pub bracketed: bool,
    /// The snapshot every chunk is read in, when one is held across chunks
    /// (`copy_in_one_snapshot`).
    held: Option<Position>,
}

impl ChunkCopier {
    pub async fn new(ctx: Arc<SubtaskContext>, slot: usize) -> Result<Self> {
        let lock = crate::session_lock::SessionLock::of(
            &ctx.meta,
            &ctx.source.source_id,
            COPIER_LOCKS + slot,
        );
        let src = crate::db::connect_raw(&ctx.source.from, DbRole::Source).await?;
        ctx.fence.check()?;
        let tgt = connect_target(&ctx.target, &lock, true).await?;
        Ok(ChunkCopier {
            ctx,
            src,
            tgt: Some(tgt),
            load_data: true,
            counted: (0, 0),
            lock,
            row_condition: None,
            bracketed: false,
            held: None,
        })
    }

    /// Copies `chunks` (of any tables) in one snapshot at one exact position, which every
    /// chunk is recorded done at: tables that must agree with each other (linked by foreign
    /// keys) are read as of one moment. The tables are opened first, so their definitions
    /// cannot change until the last chunk is read.
    pub async fn copy_in_one_snapshot(
        &mut self,
        chunks: &mut [(ChunkRecord, Arc<CopyPlan>)],
    ) -> Result<Vec<Copied>> {
        let src_addr = self.ctx.source.from.addr();
        let se = |e| Error::db(DbRole::Source, &src_addr, e);
        let (at, gtid) =
            begin_snapshot(&mut self.src, self.ctx.flavor, &self.ctx.source, false).await?;
        let gtid = gtid
            .map(|g| GtidSet::parse(self.ctx.flavor, &g).map_err(Error::Invalid))
            .transpose()?;
        self.held = Some(Position { binlog: at, gtid });
        let copied = async {
            let tables: BTreeSet<&TableName> = chunks.iter().map(|(c, _)| &c.table).collect();
            for t in tables {
                match self
                    .src
                    .query_drop(format!("SELECT 1 FROM {} LIMIT 0", t.quoted()))
                    .await
                {
                    Err(mysql_async::Error::Server(e)) if e.code == errno::NO_SUCH_TABLE => {}
                    r => r.map_err(se)?,
                }
            }
            let mut out = Vec::with_capacity(chunks.len());
            for (chunk, plan) in chunks.iter_mut() {
                out.push(self.copy(chunk, plan).await?);
            }
            Ok(out)
        }
        .await;
        self.held = None;
        let _ = self.src.query_drop("ROLLBACK").await;
        copied
    }

    /// Copies `chunk` of a table planned as `plan`; on success the chunk is recorded done with
    /// its rows, bytes and position.
    pub async fn copy(&mut self, chunk: &mut ChunkRecord, plan: &CopyPlan) -> Result<Copied> {
        let mut r = self.copy_once(chunk, plan).await;
        self.end_chunk(r.is_err(), &chunk.table.to_string()).await?;
        let refused = matches!(
            r.as_ref().err().and_then(Error::errno),
            Some(NOT_ALLOWED_COMMAND | LOCAL_INFILE_DISABLED | LOCAL_INFILE_CAPABILITY)
        );
        if self.load_data && refused {
            tracing::warn!(target = %self.ctx.target.addr(), "the target refuses LOAD DATA LOCAL INFILE (local_infile=OFF); loading with INSERTs, which is slower");
            self.load_data = false;
            r = self.copy_once(chunk, plan).await;
            self.end_chunk(r.is_err(), &chunk.table.to_string()).await?;
        }
        r
    }

    /// Records `name` as copied if all its chunks are done: builds the secondary indexes left
    /// out at creation (`defer_indexes`), then writes the load record with the lowest and
    /// highest chunk positions and the model (`model`, else read from the source).
    pub async fn finish_table(
        &mut self,
        name: &TableName,
        model: Option<Table>,
        defer_indexes: bool,
    ) -> Result<()> {
        let source_id = &self.ctx.source.source_id;
        let tgt_addr = self.ctx.target.addr();
        let tgt = self
            .tgt
            .as_mut()
            .expect("the target session is back between chunks");
        let te = |e| Error::db(DbRole::Target, &tgt_addr, e);
        let plan: Vec<ChunkRecord> = self
            .ctx
            .meta
            .chunks(tgt, &tgt_addr, source_id, Some(name))
            .await?;
        let positions: Option<Vec<&Position>> = plan.iter().map(|c| c.done.as_ref()).collect();
        let Some(positions) = positions.filter(|p| !p.is_empty()) else {
            return Ok(());
        };
        let low = positions
            .iter()
            .min_by(|a, b| a.binlog.cmp(&b.binlog))
            .map(|p| (*p).clone());
        let high = positions.iter().map(|p| p.binlog.clone()).max();
        let (Some(low), Some(high)) = (low, high) else {
            return Ok(());
        };
        let src_addr = self.ctx.source.from.addr();
        let se = |e| Error::db(DbRole::Source, &src_addr, e);
        let table = match model {
            Some(t) => t,
            None => match load_table(&mut self.src, name).await.map_err(se)? {
                Some(t) => t,
                None => return Ok(()),
            },
        };
        if defer_indexes {
            let show = format!("SHOW CREATE TABLE {}", name.quoted());
            let source: Option<(Vec<u8>, Vec<u8>)> =
                self.src.query_first(&show).await.map_err(se)?;
            let target: Option<(String, String)> = tgt.query_first(&show).await.map_err(te)?;
            if let (Some((_, source)), Some((_, target))) = (source, target) {
                let add = indexes::missing_indexes(&String::from_utf8_lossy(&source), &target);
                if !add.is_empty() {
                    // Shown in the status while they are built: on a big table that takes
                    // minutes after its last chunk. A kill meanwhile leaves the table without
                    // a load record; the restart compares the definitions again and builds
                    // what is missing.
                    let key = name.to_string();
                    let progress = &self.ctx.progress;
                    progress.set_indexes_building(&key, add.len() as u64);
                    tracing::info!(table = %name, indexes = add.len(), "building secondary indexes after the data");
                    crate::failpoint::pause("before-index-build").await;
                    let built = tgt
                        .query_drop(format!("ALTER TABLE {} {}", name.quoted(), add.join(", ")))
                        .await
                        .map_err(te);
                    progress.set_indexes_building(&key, 0);
                    built?;
                    tracing::info!(table = %name, indexes = add.len(), "secondary indexes built after the data");
                }
            }
        }
        let rows = plan.iter().map(|c| c.rows).sum();
        tgt.query_drop(
            self.ctx
                .meta
                .table_loaded_sql(source_id, &table, &low, &high, rows),
        )
        .await
        .map_err(te)?;
        self.ctx
            .progress
            .tables_done
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(table = %name, rows, chunks = plan.len(), from = %low, to = %high, "table copied");
        Ok(())
    }

    /// Ends the chunk's snapshot; after a failure, rolls the target back (or reconnects when
    /// its session went down with the writer) and takes back the progress it counted.
    async fn end_chunk(&mut self, failed: bool, table: &str) -> Result<()> {
        if self.held.is_none() {
            let _ = self.src.query_drop("ROLLBACK").await;
        }
        if failed {
            match self.tgt.as_mut() {
                Some(t) => {
                    let _ = t.query_drop("ROLLBACK").await;
                }
                None => {
                    self.ctx.fence.check()?;
                    self.tgt = Some(connect_target(&self.ctx.target, &self.lock, false).await?)
                }
            }
            let (rows, bytes) = std::mem::take(&mut self.counted);
            self.ctx
                .progress
                .rows_loaded
                .fetch_sub(rows, Ordering::Relaxed);
            self.ctx.progress.sub_table_rows(table, rows, bytes);
        }
        self.counted = (0, 0);
        Ok(())
    }

    async fn copy_once(&mut self, chunk: &mut ChunkRecord, plan: &CopyPlan) -> Result<Copied> {
        let (table, at) = match self.open_snapshot(&chunk.table, &plan.columns).await? {
            Opened::Table(opened) => *opened,
            Opened::Gone => return Ok(Copied::Gone),
            Opened::Changed => return Ok(Copied::Changed),
        };
        let sql = self.chunk_sql(&table, chunk, plan);
        let te = |e| Error::db(DbRole::Target, &self.ctx.target.addr(), e);
        let mut tgt = self
            .tgt
            .take()
            .expect("the target session is back after each chunk");
        tgt.query_drop("START TRANSACTION").await.map_err(te)?;
        // Rows are encoded here and written by a second task, so reading and writing overlap.
        let (tx, rx) = mpsc::channel::<(Bytes, Claim)>(4);
        let writer = tokio::spawn(write_batches(
            tgt,
            rx,
            sql.mode.clone(),
            self.ctx.target.addr(),
        ));
        let read = self.read_rows(&table, &sql, tx).await;
        let (tgt, taken) = writer
            .await
            .map_err(|e| Error::Internal(format!("writer of {} panicked: {e}", table.name)))??;
        let (rows, bytes) = self.counted;
        // A REPLACE counts the row it evicted too.
        let short = if sql.merged {
            taken != rows
        } else {
            taken < rows
        };
        if read.is_ok() && short {
            self.tgt = Some(tgt);
            return Err(Error::Db {
                role: DbRole::Target,
                addr: self.ctx.target.addr(),
                message: format!(
                    "{}: the target took {taken} of the chunk's {rows} rows",
                    table.name
                ),
                errno: None,
                retryable: false,
                position: None,
            });
        }
        if let Err(e) = read {
            self.tgt = Some(tgt);
            return Err(e);
        }
        chunk.rows = rows;
        chunk.bytes = bytes;
        self.commit_chunk(tgt, chunk, &at).await?;
        chunk.done = Some(at);
        Ok(Copied::Done(table))
    }

    /// Starts the chunk's snapshot (bracketed or under the lock, see `begin_snapshot`) and
    /// reads the table's definition in it, which must still have the planned `columns`.
    async fn open_snapshot(&mut self, name: &TableName, columns: &[String]) -> Result<Opened> {
        let src_addr = self.ctx.source.from.addr();
        let se = |e| Error::db(DbRole::Source, &src_addr, e);
        let (at, gtid) = match &self.held {
            Some(p) => (p.binlog.clone(), None),
            None => {
                begin_snapshot(
                    &mut self.src,
                    self.ctx.flavor,
                    &self.ctx.source,
                    self.bracketed,
                )
                .await?
            }
        };
        // Opening the table takes its metadata lock for the rest of the transaction: from here
        // on its definition cannot change under us.
        match self
            .src
            .query_drop(format!("SELECT 1 FROM {} LIMIT 0", name.quoted()))
            .await
        {
            Err(mysql_async::Error::Server(e)) if e.code == errno::NO_SUCH_TABLE => {
                return Ok(Opened::Gone)
            }
            r => r.map_err(se)?,
        }
        let Some(table) = load_table(&mut self.src, name).await.map_err(se)? else {
            return Ok(Opened::Gone);
        };
        let same_columns = table.columns.len() == columns.len()
            && table
                .columns
                .iter()
                .zip(columns)
                .all(|(a, b)| a.name.eq_ignore_ascii_case(b));
        if !same_columns {
            return Ok(Opened::Changed);
        }
        // MySQL's GTID set came with the position, under the global read lock. MariaDB's
        // would scan the binlog file up to the position (BINLOG_GTID_POS), for every chunk:
        // only the incremental phase's start needs it, and gets it then.
        let gtid = match &self.held {
            Some(p) => p.gtid.clone(),
            None => gtid
                .map(|g| GtidSet::parse(self.ctx.flavor, &g).map_err(Error::Invalid))
                .transpose()?,
        };
        Ok(Opened::Table(Box::new((
            table,
            Position { binlog: at, gtid },
        ))))
    }

    /// The chunk's SELECT on the source and how its rows are written to the target.
    fn chunk_sql(&self, table: &Table, chunk: &ChunkRecord, plan: &CopyPlan) -> ChunkSql {
        let name = &table.name;
        let written: Vec<usize> = (0..table.columns.len())
            .filter(|&i| !table.columns[i].generated)
            .collect();
        let col_list = written
            .iter()
            .map(|&i| quote_ident(&table.columns[i].name))
            .collect::<Vec<_>>()
            .join(", ");
        let bounds: Bounds = (chunk.lower.clone(), chunk.upper.clone());
        let cond = plan
            .key
            .as_ref()
            .map(|k| k.range(&bounds))
            .unwrap_or_else(|| "1 = 1".into());
        let select = match &self.row_condition {
            Some(w) => format!(
                "SELECT {col_list} FROM {} WHERE {cond} AND ({w})",
                name.quoted()
            ),
            None => format!("SELECT {col_list} FROM {} WHERE {cond}", name.quoted()),
        };
        let (into, extra) = match plan.routed.as_ref() {
            Some(r) => (r.target.clone(), r.extra.clone()),
            None => (name.clone(), vec![]),
        };
        let extra_cols: String = extra
            .iter()
            .map(|(c, _)| format!(", {}", quote_ident(c)))
            .collect();
        let extra_values: String = extra
            .iter()
            .map(|(_, v)| format!(",{}", quote_str(v)))
            .collect();
        // Chunks are snapshots of different moments: a unique secondary key value may sit in
        // one row of an earlier chunk and another row of this one (it moved between them).
        // The newer row replaces the older: the older row changed after its chunk's snapshot,
        // and that change is replayed from the binlog (in safe mode up to past the last
        // chunk). Rows of shards merged into one table keep the plain insert: there a conflict
        // may be two shards' rows, and it stops the copy.
        let merged = plan.routed.as_ref().is_some_and(|r| r.merged);
        let mode = match (self.load_data, merged) {
            (true, false) => Mode::Load(load_data_sql(table, &written, &into, &extra, "REPLACE ")),
            (true, true) => Mode::Load(load_data_sql(table, &written, &into, &extra, "")),
            (false, merged) => Mode::Insert(format!(
                "{} INTO {} ({col_list}{extra_cols}) VALUES ",
                if merged { "INSERT" } else { "REPLACE" },
                into.quoted()
            )),
        };
        ChunkSql {
            select,
            mode,
            extra_values,
            written,
            merged,
        }
    }

    /// Reads the chunk's rows, runs them through the expression filters and plugins, and hands
    /// them to the writer in batches; counts them in the progress as they go.
    async fn read_rows(
        &mut self,
        table: &Table,
        sql: &ChunkSql,
        tx: mpsc::Sender<(Bytes, Claim)>,
    ) -> Result<()> {
        let name = &table.name;
        let src_addr = self.ctx.source.from.addr();
        let se = |e| Error::db(DbRole::Source, &src_addr, e);
        let budget = ByteBudget::new(crate::budget::COPY_QUEUE_BYTES);
        let ChunkSql {
            select,
            mode,
            extra_values,
            written,
            ..
        } = sql;
        let rules = &self.ctx.rows;
        rules.at_boundary();
        let kinds: Vec<ColumnKind> = written.iter().map(|&ci| table.columns[ci].kind()).collect();
        // Without filters or plugins rows go straight from the source row to the batch.
        let direct = rules.passes_all(name);
        let mut result = self.src.exec_iter(select.as_str(), ()).await.map_err(se)?;
        let mut out = Outbox {
            batcher: Batcher {
                mode,
                kinds: &kinds,
                extra_values,
                text: String::new(),
                buf: Vec::with_capacity(BATCH_BYTES + 4096),
                rows: 0,
            },
            tx,
            budget,
            progress: &self.ctx.progress,
            counted: &mut self.counted,
            table_key: name.to_string(),
        };
        // Rows waiting for the row rules (whole images by the table's columns).
        let mut held: Vec<HookRow> = Vec::new();
        let mut done = false;
        // `out.push` is false once the writer failed; its error is reported by the caller.
        while !done {
            match result.next().await.map_err(se)? {
                Some(row) if direct => {
                    let datums = written
                        .iter()
                        .zip(row.unwrap())
                        .map(|(&ci, v)| Datum::from_value(&table.columns[ci], v));
                    if !out.push(datums).await {
                        return Ok(());
                    }
                    continue;
                }
                Some(row) => held.push(HookRow {
                    op: RowOp::Insert,
                    before: None,
                    after: Some(full_image(table, written, row)),
                }),
                None => done = true,
            }
            if !held.is_empty() && (done || held.len() >= RULES_BATCH_ROWS) {
                for datums in rules_pass(rules, table, written, std::mem::take(&mut held))? {
                    if !out.push(datums.into_iter()).await {
                        return Ok(());
                    }
                }
            }
        }
        out.finish().await;
        Ok(())
    }

    /// Records the chunk done (with its snapshot's position `at`) in the transaction that
    /// holds its rows, and commits; the target session is kept for the next chunk either way
    /// (on error, the rollback happens when the transaction is abandoned).
    async fn commit_chunk(
        &mut self,
        mut tgt: Conn,
        chunk: &ChunkRecord,
        at: &Position,
    ) -> Result<()> {
        let done = self
            .ctx
            .meta
            .chunk_done_sql(&self.ctx.source.source_id, chunk, at);
        crate::failpoint::pause("before-chunk-commit").await;
        let fenced = self.ctx.fence.check();
        let committed = match fenced {
            Ok(()) => async {
                tgt.query_drop(done).await?;
                tgt.query_drop("COMMIT").await
            }
            .await
            .map_err(|e| Error::db(DbRole::Target, &self.ctx.target.addr(), e)),
            Err(e) => Err(e),
        };
        self.tgt = Some(tgt);
        committed
    }
}

/// Starts the snapshot transaction and returns the binlog position it sees (with the GTID
/// set, for MySQL). `bracketed`: no lock and no exact position: the position read just before
/// the snapshot starts, which it is at or after (the full phase keeps the safe mode past the
/// position read after its last chunk).
pub(crate) async fn begin_snapshot(
    src: &mut Conn,
    flavor: Flavor,
    source: &SourceConfig,
    bracketed: bool,
) -> Result<(BinlogPos, Option<String>)> {
    let se = |e| Error::db(DbRole::Source, &source.from.addr(), e);
    src.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(&se)?;
    if bracketed {
        let low = crate::upstream::binlog_status(src, flavor, &source.from.addr()).await?;
        // Tests widen the bracket: writes land between the position and the snapshot.
        crate::failpoint::pause("inside-bracket").await;
        src.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            .await
            .map_err(&se)?;
        return Ok(low);
    }
    match flavor {
        Flavor::Mariadb => {
            src.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                .await
                .map_err(&se)?;
            let rows: Vec<(String, String)> = src
                .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
                .await
                .map_err(&se)?;
            let get = |k: &str| {
                rows.iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.clone())
            };
            let name = get("binlog_snapshot_file").unwrap_or_default();
            let pos = get("binlog_snapshot_position")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            if name.is_empty() {
                return Err(Error::Db {
                    role: DbRole::Source,
                    addr: source.from.addr(),
                    message: "binary logging is off: no binlog_snapshot_file".into(),
                    errno: None,
                    retryable: false,
                    position: None,
                });
            }
            Ok((BinlogPos { name, pos }, None))
        }
        Flavor::Mysql => {
            // MySQL has no lock-free snapshot position: hold a global read lock from a
            // second session while this one starts its snapshot and reads the position.
            let mut locker = crate::db::connect(&source.from, DbRole::Source).await?;
            locker
                .query_drop("FLUSH TABLES WITH READ LOCK")
                .await
                .map_err(&se)?;
            src.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                .await
                .map_err(&se)?;
            // Executed_Gtid_Set is read in the same row, under the lock.
            let status = crate::upstream::binlog_status(src, flavor, &source.from.addr()).await;
            locker.query_drop("UNLOCK TABLES").await.map_err(&se)?;
            status
        }
    }
}
