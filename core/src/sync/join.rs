//! Tables that join a running task: added to its block-allow list by `update-task` (or copied
//! again by `resync`), they are copied and caught up beside the running stream, which never
//! stops for them.
//!
//! The main stream skips every event of a joining table (`Checkpoint::joining`). Beside it a
//! second stream, the lane, brings the tables in with the machinery of a task's start: the
//! full phase copies them chunk by chunk (resumable by chunk, `<task>_chunk` under the lane's
//! own source key, `<source>+join`), then an incremental stream of its own reads the binlog
//! directly from the source from the oldest chunk's position, in safe mode until past the
//! newest (the full phase's proof, docs/architecture.md). Once it has caught up with the
//! source it asks the main stream to hand over:
//!
//! 1. main, between two transactions, answers with the end `D` of the last one it routed and
//!    waits;
//! 2. the lane applies its tables' events up to `D` (or is past it already, at `C >= D`),
//!    commits, and answers with where it stopped (`max(C, D)`) and the tables' definitions;
//! 3. main tracks the tables, skips their events up to that position (`table_positions`, as
//!    after a full phase), saves its checkpoint and goes on; then the lane's records go.
//!
//! Every event of a joining table is applied exactly once in binlog order: by the lane up to
//! the handoff position, by main after it, never by both at once (main waits while the lane
//! finishes). A crash before main's checkpoint leaves the tables joining and the lane resumes
//! from its own checkpoint (or chunks); after it, stale lane records are removed.

use super::{Dispatcher, Incremental};
use crate::checkpoint::Checkpoint;
use crate::config::DumperConfig;
use crate::context::SubtaskContext;
use crate::error::{DbRole, Error, Result};
use crate::position::{BinlogPos, Position};
use crate::table::{Table, TableName};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::lane_id;

/// The lane asks main to hand its tables over.
pub(super) struct HandoffRequest {
    /// Main answers with the end of the last transaction it routed, and waits there.
    pub at: oneshot::Sender<BinlogPos>,
    /// Then the lane answers with what it brings.
    pub joined: oneshot::Receiver<Joined>,
}

/// What the lane hands over.
pub(super) struct Joined {
    /// Every event of the tables up to here is applied; main applies those after it.
    pub at: BinlogPos,
    /// The tables the lane was started for (they stop joining).
    pub names: BTreeSet<TableName>,
    /// Their definitions at `at` (a table dropped meanwhile is missing).
    pub tables: Vec<Table>,
    /// Main saved its checkpoint with them: the lane's records may go.
    pub saved: oneshot::Sender<()>,
}

/// The lane's end of the handoff, in the lane's `Incremental`.
pub struct LaneEnd {
    requests: mpsc::Sender<HandoffRequest>,
    names: BTreeSet<TableName>,
}

impl LaneEnd {
    /// Asks main to hand over (the lane caught up with the source); main's answer is the
    /// position it waits at and where to send what the lane brings.
    pub(super) async fn ask(&self) -> Result<(BinlogPos, oneshot::Sender<Joined>)> {
        let gone = || Error::Internal("the main stream is gone".into());
        let (at_tx, at_rx) = oneshot::channel();
        let (joined_tx, joined_rx) = oneshot::channel();
        let req = HandoffRequest {
            at: at_tx,
            joined: joined_rx,
        };
        self.requests.send(req).await.map_err(|_| gone())?;
        let at = at_rx.await.map_err(|_| gone())?;
        Ok((at, joined_tx))
    }

    /// Hands the tables over at `at` with their definitions from `tracker`, and waits until
    /// main saved its checkpoint.
    pub(super) async fn hand_over(
        &self,
        reply: oneshot::Sender<Joined>,
        at: BinlogPos,
        tracker: &crate::schema::Tracker,
    ) -> Result<()> {
        let (saved_tx, saved_rx) = oneshot::channel();
        let joined = Joined {
            at,
            names: self.names.clone(),
            tables: self
                .names
                .iter()
                .filter_map(|n| tracker.get(n).cloned())
                .collect(),
            saved: saved_tx,
        };
        reply
            .send(joined)
            .map_err(|_| Error::Internal("the main stream is gone".into()))?;
        saved_rx
            .await
            .map_err(|_| Error::Internal("the main stream ended during the handoff".into()))
    }
}

/// What main keeps of its lane.
pub(super) struct Lane {
    pub requests: mpsc::Receiver<HandoffRequest>,
    pub task: crate::abort_on_drop::AbortOnDrop<Result<()>>,
}

/// Tables the task's rules select on the source that the stream neither tracks nor brings
/// in already: tables added to the task since its checkpoint.
pub async fn new_tables(
    src: &mut mysql_async::Conn,
    src_addr: &str,
    filter: &crate::rules::TableFilter,
    cp: &Checkpoint,
) -> Result<BTreeSet<TableName>> {
    let listed = crate::schema::list_tables(src, filter)
        .await
        .map_err(|e| Error::db(DbRole::Source, src_addr, e))?;
    Ok(listed
        .into_iter()
        .filter(|t| cp.tracker.get(t).is_none() && !cp.joining.contains(t))
        .collect())
}

impl Incremental {
    /// Starts the lane that brings `cp.joining` in; `None` when no table is joining.
    pub(super) async fn start_lane(&self, cp: &Checkpoint) -> Result<Option<Lane>> {
        if cp.joining.is_empty() {
            return Ok(None);
        }
        let Some(dumper) = self.full.clone() else {
            return Err(Error::Invalid(format!(
                "tables {} are joining task `{}`, which has no full phase to copy them",
                names(&cp.joining),
                self.ctx.task
            )));
        };
        let (tx, rx) = mpsc::channel(1);
        let lane = LaneRun {
            main: self.ctx.clone(),
            dumper,
            syncer: self.syncer.clone(),
            events: self.events.clone(),
            operators: self.operators.clone(),
            origin: crate::upstream::BinlogOrigin {
                reader: self.origin.sub_reader("join").reader,
                relay: None,
            },
            requests: tx,
        };
        let joining = cp.joining.clone();
        tracing::info!(task = %self.ctx.task, source = %self.ctx.source.source_id, tables = %names(&joining), "tables joining the running task");
        let task = crate::abort_on_drop::AbortOnDrop(tokio::spawn(async move {
            let r = lane.run(joining).await;
            *lane
                .main
                .progress
                .joining
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
            r
        }));
        Ok(Some(Lane { requests: rx, task }))
    }
}

/// With `foreign-key-checks`, a table linked by foreign keys cannot join a running task: its
/// copy would be read at other moments than the tables it is linked to, and the exact apply
/// of linked tables needs them to agree (`linked.rs`).
pub async fn refuse_linked(
    src: &mut mysql_async::Conn,
    source: &crate::config::SourceConfig,
    filter: &crate::rules::TableFilter,
    adding: &BTreeSet<TableName>,
) -> Result<()> {
    let fks = crate::schema::foreign_keys::list(src, None)
        .await
        .map_err(|e| Error::db(DbRole::Source, &source.from.addr(), e))?;
    let allowed = |t: &TableName| filter.allows_table(&t.schema, &t.table);
    let linked = fks.iter().find(|fk| {
        (adding.contains(&fk.child) && allowed(&fk.parent))
            || (adding.contains(&fk.parent) && allowed(&fk.child))
    });
    match linked {
        Some(fk) => Err(Error::Invalid(format!(
            "tables {} cannot join the running task: foreign key {fk} links them to other tables, which foreign-key-checks copies together in one snapshot; take them out of the task again (update-task), or copy the whole task again (stop-task, start-task --remove-meta)",
            names(adding)
        ))),
        None => Ok(()),
    }
}

fn names(tables: &BTreeSet<TableName>) -> String {
    tables
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The lane: copies, catches up, hands over, round after round until every joining table
/// joined.
struct LaneRun {
    main: Arc<SubtaskContext>,
    dumper: DumperConfig,
    syncer: crate::config::SyncerConfig,
    events: crate::rules::EventFilter,
    operators: Vec<super::BinlogOperator>,
    origin: crate::upstream::BinlogOrigin,
    requests: mpsc::Sender<HandoffRequest>,
}

impl LaneRun {
    async fn run(&self, mut remaining: BTreeSet<TableName>) -> Result<()> {
        let id = lane_id(&self.main.source.source_id);
        let addr = self.main.target.addr();
        let mut tgt = crate::db::connect(&self.main.target, DbRole::Target).await?;
        while !remaining.is_empty() {
            let stored = self.main.meta.load_checkpoint(&mut tgt, &addr, &id).await?;
            // A lane for tables main no longer waits for (it took them over before a crash)
            // must not apply anything again: its records go.
            let resumed = match stored {
                Some(cp) if !cp.joining.is_empty() && cp.joining.is_subset(&remaining) => Some(cp),
                Some(_) => {
                    self.main.meta.remove(&mut tgt, &addr, &id).await?;
                    None
                }
                None => None,
            };
            let round = resumed
                .as_ref()
                .map_or_else(|| remaining.clone(), |cp| cp.joining.clone());
            let ctx = self.context(&round);
            let cp = match resumed {
                Some(cp) => cp,
                None => self.copy(&ctx, &mut tgt).await?,
            };
            tracing::info!(tables = %names(&round), from = %cp.position, "joining tables: catching up with the binlog");
            Incremental {
                ctx,
                events: self.events.clone(),
                operators: self.operators.clone(),
                syncer: self.syncer.clone(),
                shard: None,
                origin: self.origin.clone(),
                precise_until: None,
                full: None,
                lane: Some(LaneEnd {
                    requests: self.requests.clone(),
                    names: round.clone(),
                }),
            }
            .run_stream(cp, None)
            .await?;
            self.main.meta.remove(&mut tgt, &addr, &id).await?;
            tracing::info!(tables = %names(&round), "tables joined the running task");
            remaining.retain(|t| !round.contains(t));
        }
        Ok(())
    }

    /// The lane's context: its own records and progress, the subtask's rules narrowed to
    /// `tables`.
    fn context(&self, tables: &BTreeSet<TableName>) -> Arc<SubtaskContext> {
        let id = lane_id(&self.main.source.source_id);
        let ctx = Arc::new(self.main.beside(id, tables.clone()));
        *self
            .main
            .progress
            .joining
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(ctx.progress.clone());
        ctx
    }

    /// Copies the lane's tables with the full phase (going on with the chunks an earlier run
    /// copied) and saves the lane's checkpoint for the catch-up.
    async fn copy(
        &self,
        ctx: &Arc<SubtaskContext>,
        tgt: &mut mysql_async::Conn,
    ) -> Result<Checkpoint> {
        let tables = ctx.filter.only_tables().cloned().unwrap_or_default();
        let copied = crate::snapshot::FullPhase {
            ctx: ctx.clone(),
            dumper: self.dumper.clone(),
        }
        .run()
        .await?;
        let copied: Vec<_> = copied
            .into_iter()
            .filter(|(t, _, _)| tables.contains(&t.name))
            .collect();
        let mut cp = match Checkpoint::after_full(copied) {
            Some(cp) => cp,
            // Gone from the source: nothing to bring but the handoff.
            None => {
                let mut src = crate::db::connect(&ctx.source.from, DbRole::Source).await?;
                let at: Position = crate::upstream::current_position(
                    &mut src,
                    ctx.flavor,
                    &ctx.source.from.addr(),
                )
                .await?;
                Checkpoint::at(at, Default::default())
            }
        };
        cp.joining = tables;
        ctx.fence.check()?;
        ctx.meta
            .save_checkpoint(tgt, &ctx.target.addr(), &ctx.source.source_id, &cp)
            .await?;
        Ok(cp)
    }
}

impl Dispatcher<'_> {
    /// Main: ends the subtask with the lane's error; hands its tables over when it asks
    /// (between two transactions).
    pub(super) async fn serve_lane(&mut self) -> Result<()> {
        let Some(lane) = &mut self.lane else {
            return Ok(());
        };
        if lane.task.0.is_finished() {
            let r = (&mut lane.task.0).await;
            self.lane = None;
            return r.unwrap_or_else(|e| {
                Err(Error::Internal(format!(
                    "the stream of tables joining the task failed: {e}"
                )))
            });
        }
        if self.mid_txn {
            return Ok(());
        }
        let Ok(req) = lane.requests.try_recv() else {
            return Ok(());
        };
        // A lane gone meanwhile ends with its error, seen on the next call.
        if req.at.send(self.cp.position.binlog.clone()).is_err() {
            return Ok(());
        }
        match req.joined.await {
            Ok(joined) => self.take_over(joined).await,
            Err(_) => Ok(()),
        }
    }

    /// Main: the lane's tables are tracked here from now on; their events up to `at` are the
    /// lane's.
    async fn take_over(&mut self, joined: Joined) -> Result<()> {
        let Joined {
            at,
            names: joined_names,
            tables,
            saved,
        } = joined;
        for n in &joined_names {
            self.cp.joining.remove(n);
            self.cp.tracker.remove(n);
            self.cp.table_positions.retain(|(t, _)| t != n);
            if at > self.cp.position.binlog {
                self.cp.table_positions.push((n.clone(), at.clone()));
            }
        }
        for t in tables {
            self.cp.tracker.insert(t);
        }
        self.plans.clear();
        self.schema_dirty = true;
        self.dirty = true;
        self.checkpoint().await?;
        tracing::info!(tables = %names(&joined_names), at = %at, "tables taken over from the joining stream");
        let _ = saved.send(());
        Ok(())
    }

    /// Lane: whether it is done, asking main to hand over once it caught up with the source
    /// and handing over once it applied everything up to where main waits. `idle`: the
    /// source has nothing more (the lane read all it wrote); else `caught_up` says that
    /// nothing read waits.
    pub(super) async fn lane_done(&mut self, caught_up: bool, idle: bool) -> Result<bool> {
        let Some(end) = &self.inc.lane else {
            return Ok(false);
        };
        // Before the newest chunk's position the tables' rows may be ahead of the stream:
        // main would replay events they hold already. An idle source is past every chunk
        // (they were read before the catch-up started), even where the newest chunk's
        // position is not a transaction's end (a rotated binlog).
        let past_chunks = idle
            || self
                .cp
                .safe_mode_exit
                .as_ref()
                .is_none_or(|exit| self.cp.position.binlog >= *exit);
        if self.handoff.is_none() && (caught_up || idle) && past_chunks && !self.mid_txn {
            self.handoff = Some(end.ask().await?);
        }
        match &self.handoff {
            Some((until, _)) if self.cp.position.binlog >= *until && !self.mid_txn => {
                self.hand_over().await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Lane: a transaction past the position main waits at is main's.
    pub(super) fn lane_stops_before(&self, end: &BinlogPos) -> bool {
        matches!(&self.handoff, Some((until, _)) if end > until)
    }

    /// Lane: commits everything and hands the tables over.
    pub(super) async fn hand_over(&mut self) -> Result<()> {
        let (Some(end), Some((until, reply))) = (&self.inc.lane, self.handoff.take()) else {
            return Ok(());
        };
        self.flush_workers().await?;
        let at = until.max(self.cp.position.binlog.clone());
        end.hand_over(reply, at, &self.cp.tracker).await
    }
}
