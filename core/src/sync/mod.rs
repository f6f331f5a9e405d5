//! The incremental phase: binlog -> whole transactions -> decode with the tracked schema ->
//! block-allow list -> SQL -> target, with the checkpoint written in the same target
//! transaction as the changes it covers.
//!
//! Two tasks: the reader cuts the binlog into transactions and sends them over a bounded
//! channel (a slow target slows the reader; memory stays bounded), the applier groups
//! consecutive transactions into one target transaction, commits when the batch is big enough
//! or nothing more is waiting, and applies DDL between batches. Because the checkpoint commits
//! atomically with the rows, a kill at any moment leaves the target at a transaction boundary
//! that the checkpoint names exactly: a restart neither loses nor repeats a change.
//!
//! Safe mode (idempotent writes) is on while the stream is before the safe-mode exit
//! position: after a full phase, up to the newest table snapshot.

mod ddl;
mod rows;

pub use rows::RowBatch;

use crate::checkpoint::{Checkpoint, MetaTables};
use crate::config::{DbConfig, Flavor, SourceConfig};
use crate::db::Datum;
use crate::error::{DbRole, Error, Result};
use crate::rules::TableFilter;
use crate::schema::{Table, TableName};
use crate::status::Progress;
use crate::upstream::{BinlogReader, EventKind, RowImage, Txn};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Commit the open target transaction when it holds this much.
const BATCH_BYTES: usize = 4 << 20;
const BATCH_ROWS: u64 = 5_000;
/// ... or when it has been open this long.
const BATCH_AGE: Duration = Duration::from_millis(200);

pub struct Incremental {
    pub source: SourceConfig,
    pub flavor: Flavor,
    pub target: DbConfig,
    pub filter: TableFilter,
    pub meta: MetaTables,
    pub progress: Arc<Progress>,
}

enum ReaderMsg {
    Txn(Txn),
    Idle,
}

/// State of the applier between batches.
struct Applier<'a> {
    inc: &'a Incremental,
    conn: Conn,
    cp: Checkpoint,
    batch: RowBatch,
    /// A target transaction is open.
    open: bool,
    opened_at: Instant,
    /// The tracker changed since the last saved checkpoint.
    schema_dirty: bool,
    /// Source transactions in the open batch.
    txns: u64,
}

impl Incremental {
    /// Runs until an error (or cancellation by dropping the future).
    pub async fn run(&self, cp: Checkpoint) -> Result<()> {
        let reader = BinlogReader::open(
            &self.source,
            self.flavor,
            &cp.position,
            self.source.enable_gtid,
            self.filter.clone(),
        )
        .await?;
        let (tx, mut rx) = mpsc::channel::<Result<ReaderMsg>>(64);
        let read_task = tokio::spawn(read_loop(reader, tx));
        let conn = crate::db::connect(&self.target, DbRole::Target).await?;
        let mut ap = Applier {
            inc: self,
            conn,
            cp,
            batch: RowBatch::default(),
            open: false,
            opened_at: Instant::now(),
            schema_dirty: false,
            txns: 0,
        };
        self.progress.set_position(&ap.cp.position);
        let result = async {
            loop {
                let msg = match tokio::time::timeout(BATCH_AGE, rx.recv()).await {
                    Err(_) => {
                        // Nothing arrived for a while and everything is committed: caught up.
                        ap.commit_if_complete().await?;
                        self.progress.idle.store(true, Ordering::Relaxed);
                        continue;
                    }
                    Ok(None) => return Err(Error::Invalid("binlog reader stopped".into())),
                    Ok(Some(m)) => m?,
                };
                match msg {
                    ReaderMsg::Idle => {
                        ap.commit_if_complete().await?;
                        self.progress.idle.store(true, Ordering::Relaxed);
                    }
                    ReaderMsg::Txn(txn) => {
                        self.progress.idle.store(false, Ordering::Relaxed);
                        ap.apply_txn(txn).await?;
                        let full = ap.batch.len() >= BATCH_BYTES || ap.batch.rows >= BATCH_ROWS;
                        if full || rx.is_empty() || ap.opened_at.elapsed() >= BATCH_AGE {
                            ap.commit_if_complete().await?;
                        }
                    }
                }
            }
        }
        .await;
        read_task.abort();
        if ap.open {
            // Uncommitted changes go with the transaction; the checkpoint says where to resume.
            let _ = ap.conn.query_drop("ROLLBACK").await;
        }
        result
    }
}

async fn read_loop(mut reader: BinlogReader, tx: mpsc::Sender<Result<ReaderMsg>>) {
    loop {
        let msg = match reader.next_txn().await {
            Ok(Some(t)) => Ok(ReaderMsg::Txn(t)),
            Ok(None) => Ok(ReaderMsg::Idle),
            Err(e) => Err(e),
        };
        let stop = msg.is_err();
        if tx.send(msg).await.is_err() || stop {
            return;
        }
    }
}

fn decode(table: &Table, image: RowImage, at: &str) -> Result<Vec<Datum>> {
    if image.len() != table.columns.len() {
        return Err(Error::Schema {
            table: table.name.to_string(),
            position: at.to_string(),
            message: format!(
                "the binlog row has {} columns, the tracked table {}",
                image.len(),
                table.columns.len()
            ),
        });
    }
    table
        .columns
        .iter()
        .zip(image)
        .map(|(c, v)| match v {
            None => Err(Error::Schema {
                table: table.name.to_string(),
                position: at.to_string(),
                message: format!("column `{}` is missing from the row image; set binlog_row_image=FULL on the source", c.name),
            }),
            Some(v) => Datum::from_binlog(c, v).map_err(|m| Error::Schema {
                table: table.name.to_string(),
                position: at.to_string(),
                message: format!("column `{}`: {m}", c.name),
            }),
        })
        .collect()
}

impl Applier<'_> {
    fn tgt_err(&self) -> impl Fn(mysql_async::Error) -> Error {
        let addr = self.inc.target.addr();
        move |e| Error::db(DbRole::Target, &addr, e)
    }

    fn safe_mode(&self) -> bool {
        matches!(&self.cp.safe_mode_exit, Some(exit) if self.cp.position.binlog < *exit)
    }

    /// Whether events of `table` in a transaction ending at the checkpoint's next position
    /// are already in the table's snapshot.
    fn in_snapshot(&self, table: &TableName, txn_end: &crate::upstream::BinlogPos) -> bool {
        self.cp
            .table_positions
            .iter()
            .any(|(t, p)| t == table && txn_end <= p)
    }

    async fn begin(&mut self) -> Result<()> {
        if !self.open {
            let te = self.tgt_err();
            self.conn
                .query_drop("START TRANSACTION")
                .await
                .map_err(te)?;
            self.open = true;
            self.opened_at = Instant::now();
        }
        Ok(())
    }

    /// Sends the pending statements of the open transaction.
    async fn send_batch(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.begin().await?;
        let sql = std::mem::take(&mut self.batch.sql);
        let rows = self.batch.rows;
        self.batch.clear();
        let addr = self.inc.target.addr();
        self.conn
            .query_drop(sql)
            .await
            .map_err(|e| Error::db(DbRole::Target, &addr, e))?;
        self.inc
            .progress
            .rows_applied
            .fetch_add(rows, Ordering::Relaxed);
        Ok(())
    }

    /// Commits the open transaction with the checkpoint, when it ends at a transaction boundary.
    async fn commit_if_complete(&mut self) -> Result<()> {
        if !self.open && self.batch.is_empty() && self.txns == 0 {
            return Ok(());
        }
        self.send_batch().await?;
        self.begin().await?;
        // Past the newest snapshot: the skip list and safe mode are done.
        if self
            .cp
            .table_positions
            .iter()
            .all(|(_, p)| self.cp.position.binlog >= *p)
        {
            self.cp.table_positions.clear();
        }
        let sql = self.inc.meta.save_checkpoint_sql(
            &self.inc.source.source_id,
            &self.cp,
            self.schema_dirty,
        );
        let te = self.tgt_err();
        self.conn.query_drop(sql).await.map_err(&te)?;
        self.conn.query_drop("COMMIT").await.map_err(&te)?;
        self.open = false;
        self.schema_dirty = false;
        self.inc
            .progress
            .txns_applied
            .fetch_add(self.txns, Ordering::Relaxed);
        self.txns = 0;
        self.inc.progress.set_position(&self.cp.position);
        self.inc
            .progress
            .safe_mode
            .store(self.safe_mode(), Ordering::Relaxed);
        Ok(())
    }

    /// The tracked model of a table, loading it from the target when the tracker lacks it
    /// (a table that existed before an incremental-only task started).
    async fn table(&mut self, name: &TableName, at: &str) -> Result<Table> {
        if let Some(t) = self.cp.tracker.get(name) {
            return Ok(t.clone());
        }
        let te = self.tgt_err();
        let loaded = crate::schema::load_table(&mut self.conn, name)
            .await
            .map_err(te)?;
        match loaded {
            Some(t) => {
                tracing::warn!(table = %name, "table not tracked; using its definition in the target");
                self.cp.tracker.insert(t.clone());
                self.schema_dirty = true;
                Ok(t)
            }
            None => Err(Error::Schema {
                table: name.to_string(),
                position: at.to_string(),
                message: "rows for a table that is neither tracked nor in the target".into(),
            }),
        }
    }

    async fn apply_txn(&mut self, txn: Txn) -> Result<()> {
        let Txn {
            events,
            end,
            timestamp,
            complete,
        } = txn;
        let at = end.binlog.to_string();
        let safe = self.safe_mode();
        // Events are consumed: row values move into the decoded rows without a copy.
        for ev in events {
            match ev.kind {
                EventKind::Rows { table, op, rows } => {
                    if self.in_snapshot(&table, &end.binlog) {
                        continue;
                    }
                    let model = self.table(&table, &at).await?;
                    for (before, after) in rows {
                        let b = before.map(|r| decode(&model, r, &at)).transpose()?;
                        let a = after.map(|r| decode(&model, r, &at)).transpose()?;
                        self.batch
                            .push(&model, op, b.as_deref(), a.as_deref(), safe);
                    }
                    if self.batch.len() >= BATCH_BYTES {
                        self.send_batch().await?;
                    }
                }
                EventKind::Query { db, sql } => {
                    self.apply_query(&db, &sql, &end).await?;
                }
            }
        }
        if complete {
            self.cp.position = end;
            self.txns += 1;
            if timestamp != 0 {
                self.inc
                    .progress
                    .last_event_ts
                    .store(timestamp as u64, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}
