//! The incremental phase, a pipeline with bounded channels (a slow target slows the reader;
//! memory stays flat):
//!
//! binlog reader -> dispatcher (decode with the tracked schema, block-allow list, DDL barrier,
//! causality) -> N apply workers (batching, compaction, one target transaction per batch).
//!
//! Checkpoints: the dispatcher saves the position of the last source transaction it routed
//! after every worker has committed everything before it: periodically, when the source is
//! quiet, and right after each DDL. Between checkpoints workers commit on their own, each
//! transaction recording the worker's high water; after a crash the task resumes from the
//! checkpoint in safe mode (idempotent writes) until it passes the highest high water, so
//! nothing is lost and nothing applied twice is applied differently.

mod apply;
mod batch;
mod causality;
mod ddl;
pub mod join;
mod linked;
mod online_ddl;
mod operator;
mod shard;
mod staged;

pub use operator::{record_operator, BinlogAction, BinlogOperator};
pub use shard::ShardSync;
mod plan;
mod rows;

pub use rows::RowBatch;

use crate::abort_on_drop::AbortOnDrop;
use crate::checkpoint::Checkpoint;
use crate::config::SyncerConfig;
use crate::context::SubtaskContext;
use crate::datum::Datum;
use crate::error::{DbRole, Error, Result};
use crate::hooks::HookRow;
use crate::position::BinlogPos;
use crate::rules::{EventFilter, RowOrigin, Verdict};
use crate::session_lock;
use crate::table::{Table, TableName};
use crate::upstream::{Baseline, BinlogOrigin, BinlogReader, EventKind, RowImage, Txn};
use apply::{ApplyWorker, WorkerMsg};
use batch::Change;
use causality::{change_keys, Causality};
use ddl::SourceStatement;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use plan::TablePlan;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// No transaction for this long: the source is quiet, checkpoint.
const QUIET: Duration = Duration::from_millis(200);
/// Causality keys held before a flush starts the map over.
const MAX_CAUSALITY_KEYS: usize = 1 << 20;
/// Messages waiting for one apply worker.
const WORKER_QUEUE: usize = 256;
/// Largest statement text sent at once (below the target's max_allowed_packet).
const MAX_STATEMENT_BYTES: usize = 8 << 20;

pub struct Incremental {
    /// What the subtask's phases share (source, target, table and row rules, progress).
    pub ctx: Arc<SubtaskContext>,
    pub events: EventFilter,
    /// What users decided about source transactions (`binlog skip|replace|inject`).
    pub operators: Vec<BinlogOperator>,
    pub syncer: SyncerConfig,
    /// Shard DDL coordination, when the task has a shard mode.
    pub shard: Option<ShardSync>,
    /// The source's binlog or the worker's relay log of it.
    pub origin: BinlogOrigin,
    /// Apply one source transaction per target transaction up to here (see `Error::Narrow`).
    pub precise_until: Option<BinlogPos>,
    /// The full phase's settings, to copy tables that join the running task (`join.rs`);
    /// `None` in a task without a full phase.
    pub full: Option<crate::config::DumperConfig>,
    /// Set when this stream is the lane that brings joining tables in.
    pub lane: Option<join::LaneEnd>,
}

enum ReaderMsg {
    /// A transaction and the bytes it holds of the read queue's budget.
    Txn(Txn, crate::budget::Claim),
    /// The source is quiet; where the stream stands when events that change nothing
    /// followed the last transaction (`BinlogReader::quiet_end`).
    Idle(Option<BinlogPos>),
}

/// Rows events of one table that follow each other in a transaction.
pub(crate) struct TableRun {
    pub table: TableName,
    pub events: Vec<RowsEvent>,
}

pub(crate) struct RowsEvent {
    pub op: crate::table::RowOp,
    pub rows: Vec<(Option<RowImage>, Option<RowImage>)>,
    /// Where the event ends (linked tables place each change by its event).
    pub end: BinlogPos,
}

/// Whole transactions whose changes wait in `pending` (while a transaction is routed, its
/// changes join them; whatever sends them first sends all).
struct Held {
    /// The ends of the first and the last of them.
    from: BinlogPos,
    to: BinlogPos,
    txns: usize,
}

/// At most this many transactions are held back ...
const HOLD_TXNS: usize = 32;
/// ... or this many changes (a worker's batch is 1000 rows by default).
const HOLD_CHANGES: usize = 256;

/// Routes decoded changes to the apply workers and keeps the checkpoint.
struct Dispatcher<'a> {
    inc: &'a Incremental,
    /// Session for DDL, checkpoints and reading definitions.
    conn: Conn,
    /// `position` is the end of the last whole transaction routed.
    cp: Checkpoint,
    /// The checkpoint in the target is older than `cp`.
    dirty: bool,
    saved_at: Instant,
    /// `safe-mode-duration`: safe mode lasts until then whatever the position.
    safe_until: Option<Instant>,
    /// The tracked schema changed since the last saved checkpoint.
    schema_dirty: bool,
    plans: HashMap<TableName, Arc<TablePlan>>,
    causality: Causality,
    workers: Vec<mpsc::Sender<WorkerMsg>>,
    handles: Vec<AbortOnDrop<Result<()>>>,
    /// Changes per worker not yet sent: of the current transaction, and of the transactions
    /// `held` says.
    pending: Vec<Vec<Change>>,
    /// Whole transactions routed but held back while more wait to be read: one message per
    /// worker for several of them, as waking a worker for each cost more than applying it.
    held: Option<Held>,
    /// Rows of held transactions (and of the current one) waiting for the row filter
    /// plugins: one call for all of them (`staged.rs`).
    staged: staged::Staged,
    /// The current transaction's rows are staged.
    staging: bool,
    /// Bytes of changes in the workers' queues.
    apply_budget: crate::budget::ByteBudget,
    keys: Vec<u64>,
    /// Shards waiting at their DDL (pessimistic shard mode): their rows are held.
    blocked: HashMap<TableName, crate::shard::ShardDdl>,
    shard_polled: Instant,
    /// End of the last transaction (or fragment) dispatched.
    dispatched: BinlogPos,
    /// The session DDL runs in, opened at the first DDL: (session, its variables as opened).
    ddl_session: Option<(Conn, Baseline)>,
    /// The last transaction routed was a fragment: the rest of it comes next.
    mid_txn: bool,
    /// Main: the lane bringing joining tables in.
    lane: Option<join::Lane>,
    /// Lane: where main waits for the handoff, and where to send it.
    handoff: Option<(BinlogPos, oneshot::Sender<join::Joined>)>,
    /// Tables linked by foreign keys and where their changes are (`linked.rs`); their worker
    /// is the last of `workers`.
    linked: linked::Linked,
}

impl Incremental {
    /// Runs until an error (or cancellation by dropping the future), with a lane for the
    /// tables joining the task, if any (`join.rs`).
    pub async fn run(&self, cp: Checkpoint) -> Result<()> {
        let lane = self.start_lane(&cp).await?;
        self.run_stream(cp, lane).await
    }

    /// The stream itself: main's (with its lane) or a lane's.
    async fn run_stream(&self, mut cp: Checkpoint, lane: Option<join::Lane>) -> Result<()> {
        let addr = self.ctx.target.addr();
        let te = |e| Error::db(DbRole::Target, &addr, e);
        let mut conn = crate::db::connect(&self.ctx.target, DbRole::Target).await?;
        let packet: Option<u64> = conn
            .query_first("SELECT @@max_allowed_packet")
            .await
            .map_err(te)?;
        let batch_bytes = (packet.unwrap_or(4 << 20) as usize / 2).min(MAX_STATEMENT_BYTES);
        // The dispatcher's session (DDL, operator statements, checkpoints) holds a lock too:
        // a worker that took this source over ends it like the apply sessions, so an old
        // owner that wakes up cannot run a DDL it held.
        let dispatcher_lock = session_lock::SessionLock::of(
            &self.ctx.meta,
            &self.ctx.source.source_id,
            session_lock::DISPATCHER,
        );
        session_lock::take_lock(&mut conn, &addr, &dispatcher_lock).await?;
        let ddl_lock = session_lock::SessionLock::of(
            &self.ctx.meta,
            &self.ctx.source.source_id,
            session_lock::DDL_SESSION,
        );
        session_lock::end_holders(&mut conn, &addr, &[ddl_lock]).await?;

        // Workers take their locks first: a worker of an earlier run that is still
        // committing finishes before the high waters are read. Changes of tables linked by
        // foreign keys go to one more (`linked.rs`).
        let n = self.syncer.worker_count.max(1);
        let ids: Vec<usize> = (0..n)
            .chain(self.ctx.foreign_keys.then_some(session_lock::LINKED_WORKER))
            .collect();
        let mut apply_workers = Vec::with_capacity(ids.len());
        for id in ids {
            let mut wconn = crate::db::connect(&self.ctx.target, DbRole::Target).await?;
            let lock =
                session_lock::SessionLock::of(&self.ctx.meta, &self.ctx.source.source_id, id);
            session_lock::take_lock(&mut wconn, &addr, &lock).await?;
            let linked = id == session_lock::LINKED_WORKER;
            apply::prepare_session(&mut wconn, &addr, linked).await?;
            let worker = ApplyWorker::new(
                id,
                self.ctx.clone(),
                wconn,
                self.syncer.batch,
                batch_bytes,
                self.syncer.compact,
                lock,
            );
            apply_workers.push(worker);
        }
        let mut high_waters = self
            .ctx
            .meta
            .high_waters(&mut conn, &addr, &self.ctx.source.source_id)
            .await?;
        let stale: Vec<usize> = high_waters
            .iter()
            .map(|h| h.worker)
            .filter(|id| {
                *id >= n && *id != session_lock::DISPATCHER && *id != session_lock::LINKED_WORKER
            })
            .collect();
        for id in &stale {
            // A worker of an earlier run with more workers: wait for its session too.
            let name =
                session_lock::SessionLock::of(&self.ctx.meta, &self.ctx.source.source_id, *id);
            // Kept while this run lives, so that session cannot come back either.
            session_lock::take_lock(&mut conn, &addr, &name).await?;
        }
        if !stale.is_empty() {
            // Those sessions may have committed meanwhile.
            high_waters = self
                .ctx
                .meta
                .high_waters(&mut conn, &addr, &self.ctx.source.source_id)
                .await?;
        }
        let linked_applied = high_waters
            .iter()
            .find(|h| h.worker == session_lock::LINKED_WORKER)
            .map(|h| linked::Place {
                pos: h.at.clone(),
                index: h.place_index,
            });
        let max = high_waters.into_iter().map(|h| h.at).max();
        if let Some(max) = &max {
            if *max > cp.position.binlog && cp.safe_mode_exit.as_ref().is_none_or(|e| max > e) {
                tracing::info!(task = %self.ctx.task, source = %self.ctx.source.source_id, checkpoint = %cp.position, until = %max,
                    "changes after the checkpoint may be applied already: safe mode until the high water");
                cp.safe_mode_exit = Some(max.clone());
            }
        }
        let mut workers = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for mut worker in apply_workers {
            worker.floor = max
                .clone()
                .filter(|_| worker.id != session_lock::LINKED_WORKER);
            worker.packet = packet.map_or(usize::MAX, |p| p as usize);
            worker.precise_until = self.precise_until.clone();
            let (tx, rx) = mpsc::channel(WORKER_QUEUE);
            workers.push(tx);
            handles.push(AbortOnDrop(tokio::spawn(worker.run(rx))));
        }

        let reader = BinlogReader::open(
            &self.ctx.source,
            self.ctx.flavor,
            &cp.position,
            self.ctx.source.enable_gtid,
            self.ctx.filter.clone(),
            &self.origin,
        )
        .await?;
        let (tx, rx) = mpsc::channel::<Result<ReaderMsg>>(64);
        let read_budget = crate::budget::ByteBudget::new(crate::budget::READ_QUEUE_BYTES);
        let mut reader_task = AbortOnDrop(tokio::spawn(read_loop(reader, tx, read_budget)));
        self.ctx.progress.set_position(&cp.position);
        let mut d = Dispatcher {
            inc: self,
            conn,
            cp,
            dirty: false,
            saved_at: Instant::now(),
            safe_until: self
                .syncer
                .safe_mode_for()
                .and_then(|d| Instant::now().checked_add(d)),
            schema_dirty: false,
            plans: HashMap::new(),
            causality: Causality::new(n),
            pending: (0..workers.len()).map(|_| Vec::new()).collect(),
            held: None,
            staged: staged::Staged::default(),
            staging: false,
            linked: linked::Linked::new(linked_applied),
            workers,
            handles,
            keys: Vec::new(),
            apply_budget: crate::budget::ByteBudget::new(crate::budget::APPLY_QUEUE_BYTES),
            blocked: HashMap::new(),
            shard_polled: Instant::now(),
            dispatched: BinlogPos::default(),
            ddl_session: None,
            mid_txn: false,
            lane,
            handoff: None,
        };
        d.register_shards().await?;
        d.restore_blocked().await?;
        d.note_needed();
        let result = d.run(rx).await;
        let at = d.cp.position.binlog.to_string();
        match result {
            // The reader ends by sending its error: ending without one is a crash.
            Err(Error::Invalid(m)) if m == READER_STOPPED => {
                let why = match (&mut reader_task.0).await {
                    Err(e) if e.is_panic() => {
                        let p = e.into_panic();
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default()
                    }
                    _ => String::new(),
                };
                Err(Error::Binlog {
                    source_id: self.ctx.source.source_id.clone(),
                    position: at,
                    message: format!("the binlog reader crashed after this position: {why}"),
                    retryable: false,
                })
            }
            r => r,
        }
    }
}

const READER_STOPPED: &str = "binlog reader stopped";

async fn read_loop(
    mut reader: BinlogReader,
    tx: mpsc::Sender<Result<ReaderMsg>>,
    budget: crate::budget::ByteBudget,
) {
    loop {
        let msg = match reader.next_txn().await {
            Ok(Some(t)) => {
                let claim = budget.claim(t.bytes).await;
                Ok(ReaderMsg::Txn(t, claim))
            }
            Ok(None) => Ok(ReaderMsg::Idle(reader.quiet_end().cloned())),
            Err(e) => Err(e),
        };
        let stop = msg.is_err();
        if tx.send(msg).await.is_err() || stop {
            return;
        }
    }
}

fn dml_kind(op: crate::table::RowOp) -> crate::rules::EventKind {
    use crate::rules::EventKind as K;
    use crate::table::RowOp;
    match op {
        RowOp::Insert => K::Insert,
        RowOp::Update => K::Update,
        RowOp::Delete => K::Delete,
    }
}

/// The row changes of `events`, decoded with `plan`, in binlog order.
fn decode_rows(plan: &TablePlan, events: Vec<RowsEvent>, end: &BinlogPos) -> Result<Vec<HookRow>> {
    let mut decoded = Vec::with_capacity(events.iter().map(|e| e.rows.len()).sum());
    for RowsEvent { op, rows, .. } in events {
        for (before, after) in rows {
            let after = after
                .map(|r| decode(&plan.table, r, before.as_ref(), end))
                .transpose()?;
            let before = before
                .map(|r| decode(&plan.table, r, None, end))
                .transpose()?;
            decoded.push(HookRow { op, before, after });
        }
    }
    Ok(decoded)
}

/// The values of a row image; `base` is the before image of an UPDATE's after image, which
/// partial JSON updates apply to.
fn decode(
    table: &Table,
    image: RowImage,
    base: Option<&RowImage>,
    at: &BinlogPos,
) -> Result<Vec<Datum>> {
    let err = |message: String| Error::Schema {
        table: table.name.to_string(),
        position: at.to_string(),
        message,
    };
    if image.len() != table.columns.len() {
        return Err(err(format!(
            "the binlog row has {} columns, the tracked table {}",
            image.len(),
            table.columns.len()
        )));
    }
    table
        .columns
        .iter()
        .zip(image)
        .enumerate()
        .map(|(i, (c, v))| match v {
            None => Err(err(format!("column `{}` is missing from the row image; set binlog_row_image=FULL on the source", c.name))),
            Some(v) => {
                let base = base.and_then(|b| b.get(i)).and_then(Option::as_ref);
                Datum::from_binlog_after(c, v, base)
                    .map_err(|m| err(format!("column `{}`: {m}", c.name)))
            }
        })
        .collect()
}

impl Dispatcher<'_> {
    async fn run(&mut self, mut rx: mpsc::Receiver<Result<ReaderMsg>>) -> Result<()> {
        let interval = Duration::from_secs(self.inc.syncer.checkpoint_flush_interval.max(1));
        loop {
            let msg = match tokio::time::timeout(QUIET, rx.recv()).await {
                Err(_) => None,
                Ok(None) => return Err(Error::Invalid(READER_STOPPED.into())),
                Ok(Some(m)) => Some(m?),
            };
            self.serve_lane().await?;
            match msg {
                Some(ReaderMsg::Txn(txn, _claim)) => {
                    if self.lane_stops_before(&txn.end.binlog) {
                        self.hand_over().await?;
                        return Ok(());
                    }
                    self.inc.ctx.progress.set_idle(false);
                    self.dispatch(txn, !rx.is_empty()).await?;
                    // Nothing read waits: a lane is as far as the source (a busy source
                    // never goes quiet).
                    if self.lane_done(rx.is_empty(), false).await? {
                        return Ok(());
                    }
                    self.poll_blocked().await?;
                    self.inc
                        .ctx
                        .progress
                        .queue_depth
                        .store(self.queue_depth(&rx), Ordering::Relaxed);
                    if self.saved_at.elapsed() >= interval {
                        self.checkpoint().await?;
                    }
                }
                // Caught up: make everything durable and visible.
                None | Some(ReaderMsg::Idle(_)) => {
                    // The reader's word that the source has nothing more, not a pause in
                    // what arrives.
                    let source_idle = msg.is_some();
                    if let Some(ReaderMsg::Idle(Some(at))) = &msg {
                        self.pass_quiet(at);
                    }
                    self.poll_blocked().await?;
                    self.checkpoint().await?;
                    self.inc.ctx.progress.set_idle(true);
                    self.inc
                        .ctx
                        .progress
                        .queue_depth
                        .store(0, Ordering::Relaxed);
                    if self.lane_done(true, source_idle).await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn queue_depth(&self, rx: &mpsc::Receiver<Result<ReaderMsg>>) -> u64 {
        let queued: usize = self
            .workers
            .iter()
            .map(|w| w.max_capacity() - w.capacity())
            .sum();
        (rx.len() + queued) as u64
    }

    fn tgt_err(&self) -> impl Fn(mysql_async::Error) -> Error {
        let addr = self.inc.ctx.target.addr();
        move |e| Error::db(DbRole::Target, &addr, e)
    }

    /// Whether a transaction ending at `end` may be in the target already.
    fn safe_mode(&self, end: &BinlogPos) -> bool {
        self.inc.syncer.safe_mode
            || matches!(&self.cp.safe_mode_exit, Some(exit) if end <= exit)
            || self.safe_until.is_some_and(|t| Instant::now() < t)
    }

    /// Whether the event filters keep an event (`sql`: the statement of a DDL); refused events
    /// stop the task.
    fn event_kept(
        &self,
        schema: &str,
        table: Option<&str>,
        kind: crate::rules::EventKind,
        sql: Option<&str>,
        at: &BinlogPos,
    ) -> Result<bool> {
        match self.inc.events.check(schema, table, kind, sql) {
            Verdict::Keep => Ok(true),
            Verdict::Drop => Ok(false),
            Verdict::Refuse(rule) => Err(Error::Filtered {
                rule,
                position: at.to_string(),
                message: format!(
                    "{} on `{schema}`{} is refused{}",
                    kind.name(),
                    table.map(|t| format!(".`{t}`")).unwrap_or_default(),
                    sql.map(|s| format!(": `{s}`")).unwrap_or_default()
                ),
            }),
        }
    }

    /// Whether events of `table` in a transaction ending at `txn_end` are already in the
    /// table's snapshot.
    fn in_snapshot(&self, table: &TableName, txn_end: &BinlogPos) -> bool {
        // Main skips the tables the lane brings in (the lane's own list is what it takes).
        (self.inc.lane.is_none() && self.cp.joining.contains(table))
            || self
                .cp
                .table_positions
                .iter()
                .any(|(t, p)| t == table && txn_end <= p)
    }

    /// Routes one transaction; `more`: others wait to be read, so its changes may be held
    /// back to go with theirs.
    async fn dispatch(&mut self, txn: Txn, more: bool) -> Result<()> {
        let Txn {
            events,
            end,
            timestamp,
            complete,
            ..
        } = txn;
        let action = self
            .inc
            .operators
            .iter()
            .find(|o| complete && o.at == end.binlog)
            .map(|o| o.action.clone());
        // A transaction of rows alone that may be held stages its rows for the plugins with
        // those held; anything else routes what is staged first.
        let stage = self.inc.ctx.rows.has_plugins()
            && more
            && complete
            && action.is_none()
            && events
                .iter()
                .all(|e| matches!(e.kind, EventKind::Rows { .. }))
            && self.may_hold(&end.binlog);
        if !stage {
            self.route_staged().await?;
        }
        match action {
            Some(BinlogAction::Skip) => {
                tracing::warn!(position = %end.binlog, events = events.len(), "transaction skipped (binlog skip)");
                self.cp.position = end;
                self.dirty = true;
                return self.checkpoint().await;
            }
            Some(BinlogAction::Replace { sql }) => return self.replace_txn(&sql, &end).await,
            Some(BinlogAction::Inject { sql }) => self.inject_before(&sql, &end).await?,
            None => {}
        }
        let at = end.binlog.to_string();
        let safe = self.safe_mode(&end.binlog);
        if self.staged.is_empty() {
            // Staged rows go to the plugins as they were when the first of them was read.
            self.inc.ctx.rows.at_boundary();
        }
        self.staging = stage;
        let last = events.len().saturating_sub(1);
        // Row events of one table that follow each other go through the row filters and to
        // causality together: one plugin call for a transaction's run of a table, not one
        // per event.
        let mut run: Option<TableRun> = None;
        for (i, ev) in events.into_iter().enumerate() {
            match ev.kind {
                EventKind::Rows { table, op, rows } => {
                    let event_end = BinlogPos {
                        name: end.binlog.name.clone(),
                        pos: ev.pos,
                    };
                    if self.in_snapshot(&table, &end.binlog)
                        || self.shard_blocked(&table, &end.binlog)
                        || !self.event_kept(
                            &table.schema,
                            Some(&table.table),
                            dml_kind(op),
                            None,
                            &end.binlog,
                        )?
                    {
                        continue;
                    }
                    let event = RowsEvent {
                        op,
                        rows,
                        end: event_end,
                    };
                    match &mut run {
                        Some(r) if r.table == table => r.events.push(event),
                        _ => {
                            if let Some(r) = run.replace(TableRun {
                                table,
                                events: vec![event],
                            }) {
                                self.dispatch_rows(r, &end.binlog, safe).await?;
                            }
                        }
                    }
                }
                EventKind::Query {
                    db,
                    sql,
                    context,
                    raw,
                } => {
                    if let Some(r) = run.take() {
                        self.dispatch_rows(r, &end.binlog, safe).await?;
                    }
                    self.send_pending(&end.binlog).await?;
                    let st = SourceStatement {
                        end: end.clone(),
                        // CREATE TABLE ... SELECT logs rows after the DDL in one
                        // transaction: then the checkpoint must not move past them yet.
                        ends_txn: complete && i == last,
                        // The statement's session on the source is the one its DDL runs in.
                        context: *context,
                        raw,
                    };
                    self.apply_query(&db, &sql, &st).await?;
                }
                EventKind::Unsupported { what, message } => {
                    return Err(Error::NotApplied {
                        reason: crate::error::NotApplied::UnsupportedEvent,
                        what,
                        position: at,
                        message,
                    })
                }
            }
        }
        if let Some(r) = run.take() {
            self.dispatch_rows(r, &end.binlog, safe).await?;
        }
        self.staging = false;
        if more && complete && self.may_hold(&end.binlog) {
            let held = self.held.get_or_insert_with(|| Held {
                from: end.binlog.clone(),
                to: end.binlog.clone(),
                txns: 0,
            });
            held.to = end.binlog.clone();
            held.txns += 1;
        } else {
            self.route_staged().await?;
            self.send_pending(&end.binlog).await?;
        }
        self.dispatched = end.binlog.clone();
        self.mid_txn = !complete;
        if complete {
            self.cp.position = end;
            self.dirty = true;
            // Counted when routed: the queue depth tells what is still on its way.
            self.inc
                .ctx
                .progress
                .txns_applied
                .fetch_add(1, Ordering::Relaxed);
            if timestamp != 0 {
                self.inc
                    .ctx
                    .progress
                    .last_event_ts
                    .store(timestamp as u64, Ordering::Relaxed);
            }
        }
        if self.causality.len() > MAX_CAUSALITY_KEYS {
            self.flush_workers().await?;
        }
        Ok(())
    }

    /// Decodes, filters and routes the row changes of a run of rows events of one table to
    /// the apply workers.
    async fn dispatch_rows(&mut self, run: TableRun, end: &BinlogPos, safe: bool) -> Result<()> {
        let plan = self.plan(&run.table, end).await?;
        if plan.linked {
            // Each change keeps the place of its own event.
            self.route_staged().await?;
            let worker = self.workers.len() - 1;
            for event in run.events {
                let place = event.end.clone();
                let kept = self.decode_and_filter(&plan, vec![event], end)?;
                self.inc.ctx.progress.throttle.take(kept.len() as u64).await;
                for HookRow { op, before, after } in kept {
                    let (place, applied) = self.linked.place(place.clone());
                    if !applied {
                        self.pending[worker].push(Change {
                            plan: plan.clone(),
                            op,
                            before,
                            after,
                            safe: false,
                            place: Some(place),
                        });
                    }
                }
            }
            return Ok(());
        }
        if self.staging {
            self.staged.push(staged::StagedRun {
                plan,
                events: run.events,
                end: end.clone(),
                safe,
            });
            return Ok(());
        }
        let kept = self.decode_and_filter(&plan, run.events, end)?;
        self.route(&plan, kept, end, safe).await
    }

    /// Routes the changes of `plan`'s table kept by the rules, of the transaction ending at
    /// `end`, to the workers their keys link them to.
    async fn route(
        &mut self,
        plan: &Arc<TablePlan>,
        kept: Vec<HookRow>,
        end: &BinlogPos,
        safe: bool,
    ) -> Result<()> {
        self.inc.ctx.progress.throttle.take(kept.len() as u64).await;
        for HookRow { op, before, after } in kept {
            change_keys(plan, before.as_deref(), after.as_deref(), &mut self.keys);
            let worker = match self.causality.route(&self.keys) {
                Some(w) => w,
                None => {
                    // Linked to two workers: let both finish first.
                    self.send_pending(end).await?;
                    self.wait_workers().await?;
                    self.causality.route(&self.keys).unwrap_or(0)
                }
            };
            self.pending[worker].push(Change {
                plan: plan.clone(),
                op,
                before,
                after,
                safe,
                place: None,
            });
        }
        Ok(())
    }

    /// The row changes of `events` decoded with `plan` and through the task's row filters
    /// (one call of each for all of them), in binlog order.
    fn decode_and_filter(
        &self,
        plan: &TablePlan,
        events: Vec<RowsEvent>,
        end: &BinlogPos,
    ) -> Result<Vec<HookRow>> {
        let decoded = decode_rows(plan, events, end)?;
        self.inc
            .ctx
            .rows
            .run(&plan.table, decoded, RowOrigin::Binlog(end))
    }

    /// Whether the changes routed so far may wait for the next transaction's: not too many
    /// of them, and not where each source transaction must have a target transaction of its
    /// own.
    fn may_hold(&self, end: &BinlogPos) -> bool {
        let changes = self.pending.iter().map(Vec::len).sum::<usize>() + self.staged.rows();
        self.held.as_ref().map_or(0, |h| h.txns) < HOLD_TXNS
            && changes < HOLD_CHANGES
            && self.inc.precise_until.as_ref().is_none_or(|p| end > p)
    }

    /// Hands the routed changes (of the current transaction and those held) to their
    /// workers; `end`: where the last of them ends.
    async fn send_pending(&mut self, end: &BinlogPos) -> Result<()> {
        let from = self.held.take().map(|h| h.from);
        for w in 0..self.workers.len() {
            if self.pending[w].is_empty() {
                continue;
            }
            let changes = std::mem::take(&mut self.pending[w]);
            let bytes = changes.iter().map(Change::sql_len).sum();
            let msg = WorkerMsg::Changes {
                changes,
                from: from.clone(),
                end: end.clone(),
                claim: self.apply_budget.claim(bytes).await,
            };
            if self.workers[w].send(msg).await.is_err() {
                return Err(self.worker_error().await);
            }
        }
        Ok(())
    }

    /// Routes and sends what is staged and held, and waits until every worker has committed
    /// everything it was given; the causality map starts over.
    async fn flush_workers(&mut self) -> Result<()> {
        self.route_staged().await?;
        if let Some(to) = self.held.as_ref().map(|h| h.to.clone()) {
            self.send_pending(&to).await?;
        }
        self.wait_workers().await
    }

    /// Waits until every worker has committed everything sent to it; the causality map
    /// starts over.
    async fn wait_workers(&mut self) -> Result<()> {
        let mut acks = Vec::with_capacity(self.workers.len());
        for w in &self.workers {
            let (tx, rx) = oneshot::channel();
            if w.send(WorkerMsg::Flush(tx)).await.is_err() {
                return Err(self.worker_error().await);
            }
            acks.push(rx);
        }
        for ack in acks {
            if ack.await.is_err() {
                return Err(self.worker_error().await);
            }
        }
        self.causality.reset();
        Ok(())
    }

    /// The error of the worker that stopped. Its channel closes a moment before its task
    /// is seen finished: wait for it (briefly), or the error (and its position) is lost.
    async fn worker_error(&mut self) -> Error {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            for h in &mut self.handles {
                if h.0.is_finished() {
                    return match (&mut h.0).await {
                        Ok(Err(e)) => e,
                        Ok(Ok(())) => Error::Internal("an apply worker stopped".into()),
                        Err(e) => Error::Invalid(format!("an apply worker failed: {e}")),
                    };
                }
            }
            if Instant::now() >= deadline {
                return Error::Internal("an apply worker stopped".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Flushes the workers and saves the position of the last routed transaction.
    async fn checkpoint(&mut self) -> Result<()> {
        let held = self.held.is_some();
        self.flush_workers().await?;
        if !self.dirty {
            return Ok(());
        }
        // Past the newest snapshot: the skip list is done.
        if self
            .cp
            .table_positions
            .iter()
            .all(|(_, p)| self.cp.position.binlog >= *p)
        {
            self.cp.table_positions.clear();
        }
        let sql = self.inc.ctx.meta.save_checkpoint_sql(
            &self.inc.ctx.source.source_id,
            &self.cp,
            self.schema_dirty,
        );
        let te = self.tgt_err();
        self.inc.ctx.fence.check()?;
        self.conn.query_drop(sql).await.map_err(te)?;
        if held {
            // A test kills dm here: the transactions held back must be in the target.
            crate::failpoint::pause("after-checkpoint-past-held").await;
        }
        self.dirty = false;
        self.schema_dirty = false;
        self.saved_at = Instant::now();
        self.note_needed();
        self.publish_online_ddl();
        let p = &self.inc.ctx.progress;
        p.set_position(&self.cp.position);
        p.safe_mode
            .store(self.safe_mode(&self.cp.position.binlog), Ordering::Relaxed);
        Ok(())
    }

    /// The source went quiet after events that change nothing (`BinlogReader::quiet_end`):
    /// the checkpoint moves past them once everything read is routed. Its GTID set stays.
    fn pass_quiet(&mut self, at: &BinlogPos) {
        if self.mid_txn || *at <= self.cp.position.binlog || self.dispatched > *at {
            return;
        }
        self.cp.position.binlog = at.clone();
        self.dirty = true;
    }

    /// Tells the relay log the oldest position a restart may read again: the checkpoint, or
    /// the DDL of a shard still blocked (its held rows are read again from there).
    fn note_needed(&self) {
        let Some(relay) = &self.inc.origin.relay else {
            return;
        };
        let oldest = self
            .blocked
            .values()
            .map(|d| &d.position.binlog)
            .chain([&self.cp.position.binlog])
            .min()
            .expect("the checkpoint is there");
        relay.set_needed(&self.inc.ctx.task, oldest);
    }

    /// The plan of a table, from the tracker, or from the target when the tracker lacks it
    /// (a table that existed before an incremental-only task started).
    async fn plan(&mut self, name: &TableName, at: &BinlogPos) -> Result<Arc<TablePlan>> {
        if let Some(p) = self.plans.get(name) {
            return Ok(p.clone());
        }
        if self.plans.is_empty() {
            // No plan since the last schema change: foreign keys may have changed too.
            self.linked.forget_groups();
        }
        let linked = self.is_linked(name, at).await?;
        let table = match self.cp.tracker.get(name) {
            Some(t) => t.clone(),
            None => {
                let te = self.tgt_err();
                let loaded = crate::schema::load_table(&mut self.conn, name)
                    .await
                    .map_err(te)?;
                let Some(t) = loaded else {
                    return Err(Error::Schema {
                        table: name.to_string(),
                        position: at.to_string(),
                        message: "rows for a table that is neither tracked nor in the target"
                            .into(),
                    });
                };
                tracing::warn!(table = %name, "table not tracked; using its definition in the target");
                self.cp.tracker.insert(t.clone());
                self.schema_dirty = true;
                self.dirty = true;
                t
            }
        };
        let mut plan = TablePlan::new(table, self.inc.ctx.router.route(name));
        plan.linked = linked;
        let plan = Arc::new(plan);
        self.plans.insert(name.clone(), plan.clone());
        Ok(plan)
    }

    /// The schema changed: plans are worked out again.
    fn schema_changed(&mut self, st: &SourceStatement) {
        self.plans.clear();
        if st.ends_txn {
            self.cp.position = st.end.clone();
        }
        self.schema_dirty = true;
        self.dirty = true;
    }
}
