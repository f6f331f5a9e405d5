//! One task on one source: decides the phase from the checkpoint in the target, runs the full
//! phase (if the task has one and it has not finished) and then the incremental phase,
//! retrying transient errors with backoff and stopping on the others.

use crate::checkpoint::{Checkpoint, MetaTables};
use crate::config::{Flavor, SourceConfig, TaskConfig, TaskMode};
use crate::context::SubtaskContext;
use crate::error::{DbRole, Error, ErrorReport, Result};
use crate::fence::Fence;
use crate::meta::MetaStore;
use crate::position::{BinlogPos, GtidSet, Position};
use crate::rules::RowRules;
use crate::rules::TableFilter;
use crate::rules::TaskRules;
use crate::schema::{tracker_now, Tracker};
use crate::snapshot::FullPhase;
use crate::status::{Phase, Progress, Stage};
use crate::sync::{Incremental, ShardSync};
use crate::upstream::{current_position, detect_flavor, gtid_at};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the worker shows of a subtask besides its counters.
#[derive(Debug, Clone)]
pub struct SubtaskState {
    pub stage: Stage,
    pub last_error: Option<ErrorReport>,
}

pub struct Subtask {
    pub task: TaskConfig,
    pub source: SourceConfig,
    pub progress: Arc<Progress>,
    pub state: Arc<Mutex<SubtaskState>>,
    /// Told when the stage changes, so the status goes out at once.
    pub changed: Arc<tokio::sync::Notify>,
    /// What users decided about source transactions (`binlog skip|replace|inject`).
    pub operators: Vec<crate::sync::BinlogOperator>,
    /// `dm ctl resync` orders for this source.
    pub resync: Vec<super::ResyncOrder>,
    /// Closed when the worker's lease runs out: no more writes to the target.
    pub fence: Fence,
    /// Where shard DDL coordination happens.
    pub store: Arc<dyn MetaStore>,
    /// Runs the task's plugins.
    pub plugin_host: crate::hooks::Host,
    /// The worker's relay log of the source, when the source has one.
    pub relay: Option<Arc<crate::upstream::relay::Relay>>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Subtask {
    fn set(&self, stage: Stage, err: Option<&Error>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.stage = stage;
        st.last_error = err.map(Error::report);
        self.changed.notify_one();
    }

    /// Runs until the task is finished (full mode) or paused by an error that needs a user.
    pub async fn run(self) {
        let mut backoff = Duration::from_secs(1);
        let mut precise: Option<BinlogPos> = None;
        loop {
            self.set(Stage::Running, None);
            let result = match self.run_once(precise.clone()).await {
                Err(Error::Narrow { until, cause }) => {
                    if precise.as_ref().is_none_or(|p| *p < until) {
                        tracing::warn!(task = %self.task.name, source = %self.source.source_id, error = %cause, until = %until,
                            "a target transaction of several source transactions failed: applying them one by one to name the one at fault");
                        precise = Some(until);
                        continue;
                    }
                    Err(*cause)
                }
                r => r,
            };
            match result {
                Ok(()) => {
                    self.set(Stage::Finished, None);
                    return;
                }
                // The worker stops this subtask (and starts it again if the source is still
                // its own): nothing for a user to do.
                Err(e @ Error::LeaseLost(_)) => {
                    tracing::warn!(task = %self.task.name, source = %self.source.source_id, error = %e, "subtask fenced off");
                    self.set(Stage::New, Some(&e));
                    return;
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(task = %self.task.name, source = %self.source.source_id, error = %e, "retrying in {backoff:?}");
                    self.set(Stage::Error, Some(&e));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    tracing::error!(task = %self.task.name, source = %self.source.source_id, error = %e, hint = %e.hint(), "subtask paused");
                    self.set(Stage::Paused, Some(&e));
                    return;
                }
            }
        }
    }

    async fn run_once(&self, precise_until: Option<BinlogPos>) -> Result<()> {
        let task = &self.task;
        let source_id = &self.source.source_id;
        let filter = task.table_filter_of(source_id);
        let meta = MetaTables::new(&task.meta_schema, &task.name);
        let tgt_addr = task.target_database.addr();
        let src_addr = self.source.from.addr();
        // With a relay log the subtask needs no source connection to go on from its
        // checkpoint: it keeps running while the source is down.
        let known_flavor = self
            .source
            .flavor
            .or_else(|| self.relay.as_ref().and_then(|r| r.flavor()));
        let files = self.source.binlog_dir.is_some();
        // Holds the phases while a server is busier than their `max-load` (source) or
        // `max-target-load` (target) says.
        let _load_check = crate::abort_on_drop::AbortOnDrop(tokio::spawn(super::load_check::run(
            self.source.from.clone(),
            task.target_database.clone(),
            self.progress.clone(),
        )));
        if files && task.task_mode != TaskMode::Incremental {
            return Err(Error::Invalid(format!(
                "task `{}`: source `{source_id}` is binlog files (binlog-dir), which only an incremental task replays; task-mode is {}",
                task.name,
                task.task_mode.name()
            )));
        }
        let mut src = match known_flavor {
            Some(_) if self.relay.is_some() || files => None,
            _ => Some(crate::db::connect(&self.source.from, DbRole::Source).await?),
        };
        let flavor = match (known_flavor, &mut src) {
            (Some(f), _) => f,
            (None, Some(c)) => detect_flavor(c, &src_addr).await?,
            (None, None) => unreachable!("connected when the flavor is unknown"),
        };
        let crate::hooks::SubtaskPlugins {
            row_filters: plugins,
            router: plugin_router,
        } = crate::meta::plugins::load_plugins(
            task,
            source_id,
            self.store.as_ref(),
            &self.plugin_host,
        )
        .await?;
        *self
            .progress
            .plugins
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = plugins.clone();
        let router = match plugin_router {
            Some((name, r)) => task.router_of(source_id).with_plugin(name, r),
            None => task.router_of(source_id),
        };
        let ctx = Arc::new(SubtaskContext {
            task: task.name.clone(),
            source: self.source.clone(),
            flavor,
            target: task.target_database.clone(),
            meta: meta.clone(),
            progress: self.progress.clone(),
            fence: self.fence.clone(),
            filter: filter.clone(),
            router,
            rows: RowRules::new(task.expression_filters_of(source_id), plugins)
                .counting_batches(self.progress.row_filter_batches.clone()),
            foreign_keys: task.foreign_key_checks,
        });
        if task.task_mode == TaskMode::Dump {
            // Nothing reaches the target: the snapshot becomes files.
            self.progress.set_phase(Phase::Full);
            return crate::dump::DumpPhase {
                task: task.name.clone(),
                source: self.source.clone(),
                flavor,
                dir: task.dump_dir_of(source_id),
                filter: filter.clone(),
                dumper: task.dumper_of(source_id),
                progress: self.progress.clone(),
                fence: self.fence.clone(),
            }
            .run()
            .await;
        }
        let mut tgt = crate::db::connect(&task.target_database, DbRole::Target).await?;
        meta.create(&mut tgt, &tgt_addr).await?;

        let mut own = meta.load_checkpoint(&mut tgt, &tgt_addr, source_id).await?;
        if own.is_none() && task.task_mode.has_incremental() && !task.task_mode.has_load() && !files
        {
            own = self
                .take_over_tidb_dm(&mut tgt, &mut src, flavor, &filter, &meta)
                .await?;
        }
        let cp = match own {
            Some(cp) => {
                tracing::info!(task = %task.name, source = %source_id, position = %cp.position, "resuming from checkpoint");
                cp
            }
            None if task.task_mode.has_load() => {
                self.progress.set_phase(Phase::Full);
                let dir = task.loader_dir_of(source_id).ok_or_else(|| {
                    Error::Invalid(format!(
                        "task `{}`: source `{source_id}` names no loaders entry",
                        task.name
                    ))
                })?;
                let loaded = crate::load::LoadPhase {
                    ctx: ctx.clone(),
                    dir: dir.clone(),
                }
                .run()
                .await?;
                if task.task_mode == TaskMode::Load {
                    return Ok(());
                }
                let position = loaded.position.ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: the dump's metadata has no binlog position (SHOW MASTER STATUS): load&sync needs it; dump with mydumper or dumpling from a server with binary logging",
                        dir.display()
                    ))
                })?;
                let cp = Checkpoint {
                    safe_mode_exit: loaded.safe_until,
                    table_positions: loaded.table_positions,
                    ..Checkpoint::at(position, loaded.tracker)
                };
                self.fence.check()?;
                meta.save_checkpoint(&mut tgt, &tgt_addr, source_id, &cp)
                    .await?;
                cp
            }
            None if task.task_mode.has_full() => {
                let dumper = task.dumper_of(source_id);
                self.configure_throttle(
                    dumper.max_rows_per_second,
                    &dumper.max_load,
                    &dumper.max_target_load,
                );
                let src = self.source_conn(&mut src).await?;
                if let Some(relay) = &self.relay {
                    // Every chunk's low watermark comes after this: the relay starts here.
                    let now = current_position(src, flavor, &src_addr).await?;
                    relay.want(&now.binlog);
                    relay.set_needed(&task.name, &now.binlog);
                }
                self.progress.set_phase(Phase::Full);
                let full = FullPhase {
                    ctx: ctx.clone(),
                    dumper,
                };
                let tables = full.run().await?;
                if task.task_mode == TaskMode::Full {
                    return Ok(());
                }
                let cp = match Checkpoint::after_full(tables) {
                    Some(mut cp) => {
                        if cp.position.gtid.is_none() {
                            let p = &cp.position.binlog;
                            cp.position.gtid =
                                gtid_at(src, flavor, &src_addr, &p.name, p.pos).await?;
                        }
                        cp
                    }
                    // Nothing to copy: follow the binlog from now on.
                    None => Checkpoint::at(
                        current_position(src, flavor, &src_addr).await?,
                        Tracker::default(),
                    ),
                };
                self.fence.check()?;
                meta.save_checkpoint(&mut tgt, &tgt_addr, source_id, &cp)
                    .await?;
                cp
            }
            None if files => {
                let cp = self.files_start(flavor)?;
                self.fence.check()?;
                meta.save_checkpoint(&mut tgt, &tgt_addr, source_id, &cp)
                    .await?;
                cp
            }
            None => {
                let src = self.source_conn(&mut src).await?;
                let cp = self.incremental_start(src, flavor, &filter).await?;
                self.fence.check()?;
                meta.save_checkpoint(&mut tgt, &tgt_addr, source_id, &cp)
                    .await?;
                cp
            }
        };
        if task.task_mode == TaskMode::Full {
            return Ok(());
        }
        let mut cp = cp;
        if !files {
            self.join_tables(&mut cp, &mut src, &filter, &meta, &mut tgt)
                .await?;
        }
        drop(src);
        drop(tgt);
        self.progress.set_phase(Phase::Incremental);
        let syncer = task.syncer_of(source_id);
        self.configure_throttle(
            syncer.max_rows_per_second,
            &syncer.max_load,
            &syncer.max_target_load,
        );
        let inc = Incremental {
            ctx,
            syncer,
            events: task.event_filter_of(&self.source),
            operators: self.operators.clone(),
            shard: task.shard_mode.map(|mode| ShardSync {
                store: self.store.clone(),
                mode,
            }),
            origin: crate::upstream::BinlogOrigin {
                reader: task.name.clone(),
                relay: self.relay.clone(),
            },
            precise_until,
            full: (!files).then(|| task.dumper_of(source_id)),
            lane: None,
        };
        inc.run(cp).await
    }

    /// Tables join the running task, copied and caught up beside it (`sync/join.rs`): those
    /// `resync` orders name, and, in a task with a full phase, those the task's rules select
    /// on the source that its checkpoint does not know (added by `update-task`).
    async fn join_tables(
        &self,
        cp: &mut Checkpoint,
        src: &mut Option<mysql_async::Conn>,
        filter: &TableFilter,
        meta: &MetaTables,
        tgt: &mut mysql_async::Conn,
    ) -> Result<()> {
        let taken = cp.resync_done;
        let orders: Vec<_> = self.resync.iter().filter(|o| o.id > taken).collect();
        let mut adding = BTreeSet::new();
        for order in &orders {
            tracing::info!(task = %self.task.name, source = %self.source.source_id, order = order.id, "resync: tables copied again");
            adding.extend(order.tables.iter().cloned());
            cp.resync_done = order.id;
        }
        if self.task.task_mode.has_full() {
            adding.extend(self.new_tables(cp, src, filter).await?);
        }
        let changed = !orders.is_empty() || !adding.is_empty();
        let addr = self.task.target_database.addr();
        if !adding.is_empty() && self.task.foreign_key_checks {
            let conn = self.source_conn(src).await?;
            let refused =
                crate::sync::join::refuse_linked(conn, &self.source, filter, &adding).await;
            if let Err(e) = refused {
                // The orders are answered (by the error); new tables wait outside the task.
                self.fence.check()?;
                meta.save_checkpoint(tgt, &addr, &self.source.source_id, cp)
                    .await?;
                return Err(e);
            }
        }
        cp.joining.extend(adding);
        if cp.joining.is_empty() {
            // A crash right after a handoff may have left the lane's records behind.
            let lane = crate::checkpoint::lane_id(&self.source.source_id);
            meta.remove(tgt, &addr, &lane).await?;
        }
        if !changed {
            return Ok(());
        }
        self.fence.check()?;
        meta.save_checkpoint(tgt, &addr, &self.source.source_id, cp)
            .await
    }

    /// Tables the task's rules select on the source that `cp` does not know: added to the
    /// task by `update-task`.
    async fn new_tables(
        &self,
        cp: &Checkpoint,
        src: &mut Option<mysql_async::Conn>,
        filter: &TableFilter,
    ) -> Result<BTreeSet<crate::table::TableName>> {
        let src_addr = self.source.from.addr();
        let conn = match self.source_conn(src).await {
            Ok(c) => c,
            // The relay lets the task run while the source is down; new tables wait.
            Err(e) if self.relay.is_some() => {
                tracing::warn!(source = %self.source.source_id, error = %e, "source unreachable: tables added to the task are looked for at the next start");
                return Ok(BTreeSet::new());
            }
            Err(e) => return Err(e),
        };
        crate::sync::join::new_tables(conn, &src_addr, filter, cp).await
    }

    /// The running phase's limits (rows per second, load check) for the subtask's throttle.
    fn configure_throttle(
        &self,
        rows_per_second: u64,
        max_load: &Option<String>,
        max_target_load: &Option<String>,
    ) {
        // Checked when the task file was read.
        let limits = |m: &Option<String>| {
            m.as_deref()
                .and_then(|m| crate::throttle::parse_max_load(m).ok())
                .unwrap_or_default()
        };
        self.progress.throttle.configure(
            rows_per_second,
            limits(max_load),
            limits(max_target_load),
        );
    }

    /// The source connection, made now if the subtask went without one so far.
    async fn source_conn<'a>(
        &self,
        src: &'a mut Option<mysql_async::Conn>,
    ) -> Result<&'a mut mysql_async::Conn> {
        if src.is_none() {
            *src = Some(crate::db::connect(&self.source.from, DbRole::Source).await?);
        }
        Ok(src.as_mut().expect("connected above"))
    }

    /// Start of an incremental-only task: `meta` of the task file, else the source's current
    /// position; the schema is read from the source as it is now. From `meta`, the changes up
    /// to the source's position at the start are applied in safe mode: the target may hold
    /// them already (a dump taken after `meta`, the usual "load, then replicate from a bit
    /// earlier"), and a change applied twice must not pause the task on a duplicate key.
    async fn incremental_start(
        &self,
        src: &mut mysql_async::Conn,
        flavor: Flavor,
        filter: &TableFilter,
    ) -> Result<Checkpoint> {
        let addr = self.source.from.addr();
        let configured = self
            .task
            .instance(&self.source.source_id)
            .and_then(|i| i.meta.clone());
        let now = current_position(src, flavor, &addr).await?;
        let (position, safe_mode_exit) = match configured {
            Some(m) => {
                let mut from = Position {
                    binlog: BinlogPos {
                        name: m.binlog_name.unwrap_or_default(),
                        pos: m.binlog_pos.unwrap_or(4),
                    },
                    gtid: match m.binlog_gtid {
                        Some(g) => Some(GtidSet::parse(flavor, &g).map_err(Error::Invalid)?),
                        None => None,
                    },
                };
                // By file and position: the GTID set there, every domain's (MariaDB).
                if from.gtid.is_none() && !from.binlog.name.is_empty() {
                    let b = &from.binlog;
                    from.gtid = gtid_at(src, flavor, &addr, &b.name, b.pos).await?;
                }
                (from, Some(now.binlog))
            }
            None => (now, None),
        };
        Ok(Checkpoint {
            safe_mode_exit,
            ..Checkpoint::at(position, tracker_now(src, filter, &addr).await?)
        })
    }

    /// Start of a replay of binlog files: `meta` of the task file, else the first file of the
    /// directory. The tables come from the files' own CREATE TABLEs or, for tables the target
    /// has already (a restored backup), from the target's definitions.
    fn files_start(&self, flavor: Flavor) -> Result<Checkpoint> {
        let dir = self
            .source
            .binlog_dir
            .as_deref()
            .expect("a binlog-dir source");
        let configured = self
            .task
            .instance(&self.source.source_id)
            .and_then(|i| i.meta.clone());
        let first = || {
            crate::upstream::relay::files::list(dir)
                .ok()
                .and_then(|names| names.into_iter().next())
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "binlog-dir {} holds no binlog files",
                        dir.display()
                    ))
                })
        };
        let position = match configured {
            Some(m) => Position {
                binlog: BinlogPos {
                    name: match m.binlog_name {
                        Some(n) => n,
                        None => first()?,
                    },
                    pos: m.binlog_pos.unwrap_or(4),
                },
                gtid: match m.binlog_gtid {
                    Some(g) => Some(GtidSet::parse(flavor, &g).map_err(Error::Invalid)?),
                    None => None,
                },
            },
            None => Position {
                binlog: BinlogPos {
                    name: first()?,
                    pos: 4,
                },
                gtid: None,
            },
        };
        Ok(Checkpoint::at(position, Tracker::default()))
    }

    /// A TiDB DM task of this name left its checkpoint in the target: start from DM's global
    /// point, in safe mode until the source's position now (DM saves its checkpoint every 30 s,
    /// so it may have applied changes past it), with the schema as the source has it now.
    async fn take_over_tidb_dm(
        &self,
        tgt: &mut mysql_async::Conn,
        src: &mut Option<mysql_async::Conn>,
        flavor: Flavor,
        filter: &TableFilter,
        meta: &MetaTables,
    ) -> Result<Option<Checkpoint>> {
        let (task, source_id) = (&self.task, &self.source.source_id);
        let tgt_addr = task.target_database.addr();
        let Some(point) = crate::checkpoint::tidb_dm::read(
            tgt,
            &tgt_addr,
            &task.meta_schema,
            &task.name,
            source_id,
            flavor,
        )
        .await?
        else {
            return Ok(None);
        };
        let addr = self.source.from.addr();
        let src = self.source_conn(src).await?;
        let now = current_position(src, flavor, &addr).await?;
        let mut position = point.position;
        if position.gtid.is_none() {
            let p = &position.binlog;
            position.gtid = gtid_at(src, flavor, &addr, &p.name, p.pos).await?;
        }
        let safe_mode_exit = Some(now.binlog).max(point.safe_mode_exit);
        let cp = Checkpoint {
            safe_mode_exit,
            ..Checkpoint::at(position, tracker_now(src, filter, &addr).await?)
        };
        self.fence.check()?;
        meta.save_checkpoint(tgt, &tgt_addr, source_id, &cp).await?;
        tracing::warn!(
            task = %task.name,
            source = %source_id,
            from = %point.table,
            position = %cp.position,
            safe_mode_until = ?cp.safe_mode_exit,
            "took over TiDB DM's checkpoint: replicating from its position, no full copy"
        );
        Ok(Some(cp))
    }
}
