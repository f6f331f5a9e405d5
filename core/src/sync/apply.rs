//! An apply worker: one target connection that writes the changes the dispatcher routes to
//! it, a batch per target transaction.
//!
//! Each transaction also records the worker's high water (the end of the newest source
//! transaction it holds changes of) with a sequence number, so that after a crash the safe
//! mode knows exactly how far changes may already be applied, and after a lost connection
//! the worker knows whether its COMMIT made it. A transient error rolls the transaction
//! back and runs it again (idempotent: nothing of it stayed); a permanent one is narrowed
//! down to the failing statement.

use super::batch::{Batch, Change};
use super::rows::RowBatch;
use crate::context::SubtaskContext;
use crate::error::{DbRole, Error, Result};
use crate::position::BinlogPos;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Commit a non-empty batch when no change arrived for this long.
const LINGER: Duration = Duration::from_millis(5);
/// Tries of one transaction before the error goes up (and the task restarts from its
/// checkpoint).
const ATTEMPTS: u32 = 5;
/// How much of a failing statement an error shows.
const SHOWN_SQL: usize = 2000;

pub enum WorkerMsg {
    /// Changes of one source transaction (or of a part of it) ending at `end`, or of several
    /// whose first ends at `from`.
    Changes {
        changes: Vec<Change>,
        from: Option<BinlogPos>,
        end: BinlogPos,
        /// Their bytes of the apply queues' budget, given back once they are in the batch.
        claim: crate::budget::Claim,
    },
    /// Commit everything held, then answer.
    Flush(oneshot::Sender<()>),
}

pub struct ApplyWorker {
    pub id: usize,
    /// What the subtask's phases share: target, meta tables, progress, fence.
    ctx: Arc<SubtaskContext>,
    pub conn: Conn,
    pub batch_rows: usize,
    pub batch_bytes: usize,
    pub compact: bool,
    batch: Batch,
    /// Source positions the open batch spans.
    first: Option<BinlogPos>,
    high_water: Option<BinlogPos>,
    seq: u64,
    /// `seq` was raised above what the previous run stored (see `commit`).
    seq_above_stored: bool,
    /// The user lock this worker holds.
    lock: crate::session_lock::SessionLock,
    /// The highest high water of earlier runs: changes up to it may be applied already. A
    /// replay in safe mode records no lower high water, or a second crash would forget it.
    pub floor: Option<BinlogPos>,
    /// Up to this position each source transaction gets a target transaction of its own:
    /// an earlier run failed on a batch of several and the one at fault must be named.
    pub precise_until: Option<BinlogPos>,
    /// The target's max_allowed_packet: the largest transaction text it takes.
    pub packet: usize,
    /// The worker of linked tables (`linked.rs`): foreign key checks on, no compaction, and
    /// the place after its last change recorded instead of a high water.
    linked: bool,
    /// The place after the last change in the open batch (linked worker).
    place: Option<super::linked::Place>,
}

/// Room a transaction's text needs besides its rows (START, high water, COMMIT, a long
/// statement head).
const TXN_OVERHEAD: usize = 64 << 10;

/// The error for a change no transaction text can carry to the target, naming its row.
fn too_big(c: &Change, end: &BinlogPos, bytes: usize, packet: usize) -> Error {
    let image = c.after.as_deref().or(c.before.as_deref()).unwrap_or(&[]);
    let columns = &c.plan.table.columns;
    let key: Vec<usize> = c
        .plan
        .identity
        .clone()
        .unwrap_or_else(|| (0..image.len().min(3)).collect());
    let shown: Vec<String> = key
        .iter()
        .filter_map(|&i| {
            let v = image.get(i)?;
            let value = if v.sql_len() > 200 {
                format!("<{} bytes>", v.sql_len())
            } else {
                v.to_sql()
            };
            Some(format!("{} = {value}", columns.get(i)?.name))
        })
        .collect();
    Error::RowTooBig {
        table: c.plan.quoted.clone(),
        key: format!("({})", shown.join(", ")),
        position: end.to_string(),
        bytes,
        packet,
    }
}

/// Prepares a target session for applying: READ COMMITTED takes no gap locks, so workers
/// writing different rows never wait for each other. A target that logs statements needs
/// REPEATABLE READ, and keeps it. The linked worker's session checks foreign keys.
pub async fn prepare_session(conn: &mut Conn, addr: &str, linked: bool) -> Result<()> {
    let te = |e| Error::db(DbRole::Target, addr, e);
    if linked {
        conn.query_drop("SET SESSION foreign_key_checks = 1")
            .await
            .map_err(te)?;
    }
    let (log_bin, format): (Option<i64>, Option<String>) = conn
        .query_first("SELECT @@log_bin, @@binlog_format")
        .await
        .map_err(te)?
        .unwrap_or((None, None));
    if !(log_bin == Some(1) && format.as_deref() == Some("STATEMENT")) {
        conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .await
            .map_err(te)?;
    }
    Ok(())
}

impl ApplyWorker {
    pub fn new(
        id: usize,
        ctx: Arc<SubtaskContext>,
        conn: Conn,
        batch_rows: usize,
        batch_bytes: usize,
        compact: bool,
        lock: crate::session_lock::SessionLock,
    ) -> Self {
        let linked = id == crate::session_lock::LINKED_WORKER;
        ApplyWorker {
            id,
            ctx,
            conn,
            batch_rows,
            batch_bytes,
            compact: compact && !linked,
            linked,
            place: None,
            batch: Batch::default(),
            first: None,
            high_water: None,
            // Raised above the stored value at the first commit (a clock set back must not
            // give a number the previous run used).
            seq: crate::status::now_micros(),
            seq_above_stored: false,
            lock,
            floor: None,
            precise_until: None,
            packet: usize::MAX,
        }
    }

    /// Applies until the dispatcher hangs up or an error.
    pub async fn run(mut self, mut rx: mpsc::Receiver<WorkerMsg>) -> Result<()> {
        loop {
            let msg = if self.batch.is_empty() {
                rx.recv().await
            } else {
                match tokio::time::timeout(LINGER, rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        self.commit().await?;
                        continue;
                    }
                }
            };
            match msg {
                // The task stops: what is not committed is not applied.
                None => return Ok(()),
                Some(WorkerMsg::Changes {
                    changes,
                    from,
                    end,
                    claim,
                }) => {
                    let precise = self.precise_until.as_ref().is_some_and(|p| end <= *p);
                    if precise && self.high_water.as_ref().is_some_and(|h| *h != end) {
                        self.commit().await?;
                    }
                    for c in changes {
                        let len = c.sql_len();
                        if len + TXN_OVERHEAD > self.packet {
                            // What came before is applied; this row cannot be.
                            self.commit().await?;
                            return Err(too_big(&c, &end, len + TXN_OVERHEAD, self.packet));
                        }
                        // A batch stays below its size, so a transaction's text stays below
                        // the packet: a big change goes into the next one. (A high water at
                        // a transaction's end with only part of its changes is safe: after
                        // a crash, safe mode applies the transaction again.)
                        if !self.batch.is_empty() && self.batch.bytes + len > self.batch_bytes {
                            self.commit().await?;
                        }
                        if let Some(p) = &c.place {
                            self.place = Some(p.next());
                        }
                        self.batch.push(c, self.compact);
                        if self.first.is_none() {
                            self.first = Some(from.clone().unwrap_or_else(|| end.clone()));
                        }
                        self.high_water = Some(end.clone());
                    }
                    drop(claim);
                    if self.batch.rows >= self.batch_rows || self.batch.bytes >= self.batch_bytes {
                        self.commit().await?;
                    }
                }
                Some(WorkerMsg::Flush(done)) => {
                    self.commit().await?;
                    let _ = done.send(());
                }
            }
        }
    }

    fn addr(&self) -> String {
        self.ctx.target.addr()
    }

    /// Writes the batch and the high water in one target transaction.
    async fn commit(&mut self) -> Result<()> {
        let Some(high_water) = self.high_water.take() else {
            return Ok(());
        };
        let first = self.first.take().unwrap_or_else(|| high_water.clone());
        let rows = self.batch.rows as u64;
        let stmts = self.batch.take_sql();
        // After a lost connection the stored seq tells whether the COMMIT made it: equal to
        // ours only if it did, so ours is above anything an earlier run stored.
        if !self.seq_above_stored {
            if let Some(stored) = self.stored_seq().await? {
                self.seq = self.seq.max(stored);
            }
            self.seq_above_stored = true;
        }
        self.seq += 1;
        // Room for every statement, its separator and the frame: a big batch is not copied again.
        let mut text = String::with_capacity(stmts.bytes + 2 * stmts.stmts.len() + 1024);
        text.push_str("START TRANSACTION;\n");
        if !stmts.is_empty() {
            stmts.join_into(&mut text);
            text.push_str(";\n");
        }
        let place = self.place.take();
        let (recorded, place_index) = match (&place, &self.floor) {
            // Exact: the linked worker never replays (so never needs a floor).
            (Some(p), _) => (&p.pos, p.index),
            (None, Some(f)) if *f > high_water => (f, 0),
            _ => (&high_water, 0),
        };
        text.push_str(&self.ctx.meta.high_water_sql(
            &self.ctx.source.source_id,
            self.id,
            self.seq,
            recorded,
            place_index,
        ));
        text.push_str(";\nCOMMIT");
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            self.ctx.fence.check()?;
            let err = match self.conn.query_drop(text.as_str()).await {
                Ok(()) => break,
                Err(e) => Error::db(DbRole::Target, &self.addr(), e),
            };
            let _ = self.conn.query_drop("ROLLBACK").await;
            if !err.is_retryable() {
                return Err(self.diagnose(&stmts, err, &first, &high_water).await);
            }
            if attempt >= ATTEMPTS {
                return Err(err);
            }
            tracing::warn!(worker = self.id, error = %err, "apply failed; trying again in {backoff:?}");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
            if self.committed().await? {
                break;
            }
        }
        self.ctx
            .progress
            .rows_applied
            .fetch_add(rows, Ordering::Relaxed);
        Ok(())
    }

    /// After a failure: whether the last transaction committed anyway (the connection broke
    /// after the COMMIT reached the server). Reconnects when the connection is gone.
    async fn committed(&mut self) -> Result<bool> {
        Ok(self.stored_seq().await? == Some(self.seq))
    }

    /// The seq this worker's row in the high-water table holds. Reconnects when the
    /// connection is gone.
    async fn stored_seq(&mut self) -> Result<Option<u64>> {
        let addr = self.addr();
        let sql = format!(
            "SELECT seq FROM {} WHERE source_id = ? AND worker = ?",
            self.ctx.meta.high_water
        );
        let seq: Option<u64> = match self
            .conn
            .exec_first(sql.as_str(), (&self.ctx.source.source_id, self.id))
            .await
        {
            Ok(s) => s,
            Err(_) => {
                self.ctx.fence.check()?;
                self.conn = crate::db::connect(&self.ctx.target, DbRole::Target).await?;
                self.reclaim_lock(&addr).await?;
                prepare_session(&mut self.conn, &addr, self.linked).await?;
                self.conn
                    .exec_first(sql.as_str(), (&self.ctx.source.source_id, self.id))
                    .await
                    .map_err(|e| Error::db(DbRole::Target, &addr, e))?
            }
        };
        Ok(seq)
    }

    async fn reclaim_lock(&mut self, addr: &str) -> Result<()> {
        crate::session_lock::reclaim_lock(&mut self.conn, addr, &self.lock).await
    }

    /// Runs the statements one by one (and rolls back) to name the one that fails.
    async fn diagnose(
        &mut self,
        stmts: &RowBatch,
        err: Error,
        first: &BinlogPos,
        last: &BinlogPos,
    ) -> Error {
        let addr = self.addr();
        let mut found = None;
        if self.conn.query_drop("START TRANSACTION").await.is_ok() {
            for s in &stmts.stmts {
                if let Err(e) = self.conn.query_drop(s.sql.as_str()).await {
                    found = Some((s, Error::db(DbRole::Target, &addr, e)));
                    break;
                }
            }
            let _ = self.conn.query_drop("ROLLBACK").await;
        }
        let (stmt, mut err) = match found {
            Some((s, e)) => (Some(s), e),
            None => (None, err),
        };
        if let Error::Db {
            message, position, ..
        } = &mut err
        {
            if first == last {
                *position = Some(last.to_string());
            }
            let at = if first == last {
                format!("the source transaction ending at {last}")
            } else {
                format!("source transactions ending between {first} and {last}")
            };
            match stmt {
                Some(s) => {
                    let sql = crate::error::shorten(&s.sql, SHOWN_SQL);
                    *message = format!(
                        "{message}; applying to {} changes of {at}: `{sql}`",
                        s.table
                    );
                }
                None => *message = format!("{message}; applying changes of {at}"),
            }
        }
        if first != last {
            return Error::Narrow {
                until: last.clone(),
                cause: Box::new(err),
            };
        }
        err
    }
}
