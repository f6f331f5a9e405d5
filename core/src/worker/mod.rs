//! The worker role: runs the subtasks of the sources bound to it. It learns what to run only
//! from the metadata store (sources, bindings, tasks, desired stages) and publishes what it
//! runs back into it, so the same loop serves standalone and cluster.

pub mod cluster;
mod load_check;
mod retention_watch;
mod stage_record;
mod subtask;

pub use subtask::{Subtask, SubtaskState};

use crate::config::{SourceConfig, TaskConfig};
use crate::fence::Fence;
use crate::meta::{self, keys, MetaStore};
use crate::status::{now_secs, Phase, Progress, Stage, SubtaskStatus};
use crate::sync::BinlogOperator;
use crate::throttle::ThrottleSetting;
use crate::upstream::relay::{PurgeRequest, Relay, RelayRun, RelayStage};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The stage a user asked for; `generation` grows with each resume so that a subtask paused
/// by an error starts again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "stage_record::StageRecord")]
pub struct DesiredStage {
    pub stage: Stage,
    pub generation: u64,
    /// Per source, what users decided about source transactions (`binlog skip|replace|
    /// inject`), by the end position of each.
    pub operators: BTreeMap<String, Vec<BinlogOperator>>,
    /// Sources paused on their own (`pause-task -s`) while the task runs.
    pub paused_sources: BTreeSet<String>,
    /// Per source, resumes of that source alone (`resume-task -s`).
    pub source_generations: BTreeMap<String, u64>,
    /// What `dm ctl throttle` set (every source of the task); applied without a restart.
    pub throttle: ThrottleSetting,
    /// `dm ctl resync` orders, the newest last; a subtask takes those newer than the last
    /// one its checkpoint took.
    pub resync: Vec<ResyncOrder>,
}

/// Copy these tables of a source again while the task runs (`dm ctl resync`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResyncOrder {
    /// Grows with each order of the task.
    pub id: u64,
    pub source: String,
    pub tables: BTreeSet<crate::table::TableName>,
}

impl DesiredStage {
    /// A stage with no binlog operators recorded.
    pub fn new(stage: Stage, generation: u64) -> Self {
        DesiredStage {
            stage,
            generation,
            operators: BTreeMap::new(),
            paused_sources: BTreeSet::new(),
            source_generations: BTreeMap::new(),
            throttle: ThrottleSetting::default(),
            resync: Vec::new(),
        }
    }

    /// The resync orders for `source`.
    pub fn resync_of(&self, source: &str) -> Vec<ResyncOrder> {
        self.resync
            .iter()
            .filter(|o| o.source == source)
            .cloned()
            .collect()
    }

    /// The binlog operators recorded for `source`.
    pub fn operators_of(&self, source: &str) -> Vec<BinlogOperator> {
        self.operators.get(source).cloned().unwrap_or_default()
    }

    /// The stage the subtask of `source` should be in.
    pub fn stage_of(&self, source: &str) -> Stage {
        match self.stage {
            Stage::Running if self.paused_sources.contains(source) => Stage::Paused,
            s => s,
        }
    }

    /// Grows with each resume of the task or of `source` alone.
    pub fn generation_of(&self, source: &str) -> u64 {
        self.generation + self.source_generations.get(source).copied().unwrap_or(0)
    }
}

struct Running {
    handle: JoinHandle<()>,
    /// Closed for good when the lease it started under is gone.
    fence: Fence,
    progress: Arc<Progress>,
    state: Arc<Mutex<SubtaskState>>,
    generation: u64,
    /// The task and source configs it runs with; a changed config restarts it.
    task: TaskConfig,
    source: SourceConfig,
    started: Instant,
    /// Restarts after it stopped without a pause, in a row.
    restarts: u32,
    /// Set when it stopped without a pause: restarted from its checkpoint then.
    restart_at: Option<Instant>,
}

/// A subtask that stopped without a pause is restarted after this, doubled per restart in a
/// row (up to `MAX_RESTART_DELAY`); a run that lasted `STABLE_RUN` starts the count over.
const RESTART_DELAY: Duration = Duration::from_secs(1);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(60);
const STABLE_RUN: Duration = Duration::from_secs(300);

pub struct Worker {
    pub name: String,
    pub store: Arc<dyn MetaStore>,
    running: BTreeMap<(String, String), Running>,
    /// A subtask changed stage, or the lease did.
    pub changed: Arc<tokio::sync::Notify>,
    /// Open while this worker may write for its sources (its lease in a cluster).
    fence: Fence,
    /// Relay logs go under here (unless a source names an absolute relay-dir).
    data_dir: PathBuf,
    /// The relay logs of bound sources that keep one.
    relays: BTreeMap<String, RelayRun>,
    /// Prometheus text of what this worker runs, renewed with each status.
    pub metrics: Arc<Mutex<String>>,
    /// Runs the plugins tasks name.
    plugin_host: crate::hooks::Host,
    /// How long the sources keep the binlog each subtask needs.
    retention: Arc<retention_watch::RetentionBoard>,
}

impl Worker {
    pub fn new(
        name: String,
        store: Arc<dyn MetaStore>,
        fence: Fence,
        data_dir: PathBuf,
        plugin_host: crate::hooks::Host,
    ) -> Self {
        Worker {
            name,
            store,
            running: BTreeMap::new(),
            changed: Arc::default(),
            fence,
            data_dir,
            relays: BTreeMap::new(),
            metrics: Arc::default(),
            plugin_host,
            retention: Arc::default(),
        }
    }

    /// Reconciles on every change under `/dm/` and at least once a second, publishing status.
    pub async fn run(mut self) {
        let mut changes = match self.store.watch(keys::ROOT).await {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "worker cannot watch the metadata store");
                return;
            }
        };
        let _retention_watch = crate::abort_on_drop::AbortOnDrop(tokio::spawn(
            retention_watch::run(self.retention.clone(), self.changed.clone()),
        ));
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                ev = changes.recv() => {
                    // What workers publish (this one's own writes among them) changes
                    // nothing a worker runs: reacting to it would write again, forever.
                    if ev.as_ref().is_some_and(|e| {
                        e.key.starts_with(keys::STATUS) || e.key.starts_with(keys::RELAY_STATUS)
                    }) {
                        continue;
                    }
                }
                _ = tick.tick() => {}
                _ = self.changed.notified() => {}
            }
            if let Err(e) = self.reconcile().await {
                tracing::warn!(error = %e, "worker reconcile failed");
            }
            if let Err(e) = self.publish().await {
                tracing::warn!(error = %e, "worker cannot publish status");
            }
        }
    }

    async fn reconcile(&mut self) -> crate::Result<()> {
        // Everything read below holds for this lease only: a subtask started from it gets a
        // fence of this lease, closed if the lease was replaced meanwhile (a worker frozen
        // mid-reconcile must not start writing on bindings read before it froze).
        let epoch = self.fence.pinned();
        if !epoch.is_open() {
            return self.stop_all().await;
        }
        let store = self.store.as_ref();
        let mine: Vec<String> = store
            .list(keys::BOUND)
            .await?
            .into_iter()
            .filter(|(_, w)| w == self.name.as_bytes())
            .map(|(k, _)| k[keys::BOUND.len()..].to_string())
            .collect();
        let mut sources = BTreeMap::new();
        for id in &mine {
            if let Some(src) = meta::get_json::<SourceConfig>(store, &keys::source(id)).await? {
                sources.insert(id.clone(), src);
            }
        }
        let tasks: Vec<TaskConfig> = meta::list_json::<TaskConfig>(store, keys::TASK)
            .await?
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        self.reconcile_relays(&sources, &tasks).await?;
        let store = self.store.as_ref();
        let mut desired: BTreeMap<(String, String), (TaskConfig, SourceConfig, DesiredStage)> =
            BTreeMap::new();
        for task in tasks {
            let Some(stage) =
                meta::get_json::<DesiredStage>(store, &keys::stage(&task.name)).await?
            else {
                continue;
            };
            for inst in &task.mysql_instances {
                if let Some(src) = sources.get(&inst.source_id) {
                    desired.insert(
                        (task.name.clone(), inst.source_id.clone()),
                        (task.clone(), src.clone(), stage.clone()),
                    );
                }
            }
        }
        self.retention.watch(
            desired
                .iter()
                .map(|(k, (task, source, _))| {
                    let watched = retention_watch::Watched {
                        task: task.clone(),
                        source: source.clone(),
                        relay: self.relays.get(&k.1).map(|r| r.relay.clone()),
                    };
                    (k.clone(), watched)
                })
                .collect(),
        );
        let restarts = self.heal().await;
        // Stop what is no longer wanted (removed, paused, reconfigured, resumed anew).
        let stale: Vec<_> = self
            .running
            .iter()
            .filter(|(k, r)| match desired.get(k) {
                None => true,
                Some((task, source, stage)) => {
                    !r.fence.is_open()
                        || stage.stage_of(&k.1) != Stage::Running
                        || stage.generation_of(&k.1) != r.generation
                        || *task != r.task
                        || *source != r.source
                }
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some(r) = self.running.remove(&k) {
                r.handle.abort();
                let _ = r.handle.await;
                if r.fence.is_open() {
                    tracing::info!(task = %k.0, source = %k.1, "subtask stopped");
                } else {
                    tracing::warn!(task = %k.0, source = %k.1, "subtask stopped: this worker's lease ran out");
                }
            }
            match desired.get(&k) {
                None => self.store.delete(&keys::status(&k.0, &k.1)).await?,
                // Restarted below.
                Some((_, _, stage)) if stage.stage_of(&k.1) == Stage::Running => {}
                Some(_) => {
                    // Paused by the user: say so.
                    let mut st = self.status_of(&k, None);
                    st.stage = Stage::Paused;
                    meta::put_json(self.store.as_ref(), &keys::status(&k.0, &k.1), &st).await?;
                }
            }
        }
        for (k, (task, source, stage)) in desired {
            if let Some(r) = self.running.get(&k) {
                // Takes effect at once, no restart.
                r.progress.throttle.set_user(&stage.throttle);
            }
            if stage.stage_of(&k.1) != Stage::Running || self.running.contains_key(&k) {
                continue;
            }
            let restarts = restarts.get(&k).copied().unwrap_or(0);
            let progress = Arc::new(Progress::announcing_to(self.changed.clone()));
            progress.throttle.set_user(&stage.throttle);
            let state = Arc::new(Mutex::new(SubtaskState {
                stage: Stage::New,
                last_error: None,
            }));
            let fence = epoch.clone();
            let sub = Subtask {
                task: task.clone(),
                relay: self.relays.get(&k.1).map(|r| r.relay.clone()),
                source: source.clone(),
                progress: progress.clone(),
                state: state.clone(),
                changed: self.changed.clone(),
                operators: stage.operators_of(&k.1),
                resync: stage.resync_of(&k.1),
                fence: fence.clone(),
                store: self.store.clone(),
                plugin_host: self.plugin_host.clone(),
            };
            tracing::info!(task = %k.0, source = %k.1, "subtask starting");
            let handle = tokio::spawn(sub.run());
            let generation = stage.generation_of(&k.1);
            self.running.insert(
                k,
                Running {
                    handle,
                    fence,
                    progress,
                    state,
                    generation,
                    task,
                    source,
                    started: Instant::now(),
                    restarts,
                    restart_at: None,
                },
            );
        }
        Ok(())
    }

    /// Self-healing: a subtask that stopped without a pause (it panicked, or lost its apply
    /// lock) shows stage `error` with the reason and is restarted from its checkpoint once
    /// its delay has passed. Returns the restart counts of those due now (removed from
    /// `running`, so the reconcile starts them again).
    async fn heal(&mut self) -> BTreeMap<(String, String), u32> {
        let now = Instant::now();
        let mut due = BTreeMap::new();
        let ended: Vec<(String, String)> = self
            .running
            .iter()
            .filter(|(_, r)| r.handle.is_finished())
            .map(|(k, _)| k.clone())
            .collect();
        for k in ended {
            let Some(r) = self.running.get_mut(&k) else {
                continue;
            };
            if let Some(at) = r.restart_at {
                if now >= at {
                    due.insert(k.clone(), r.restarts);
                    self.running.remove(&k);
                }
                continue;
            }
            let stage = r.state.lock().unwrap_or_else(|p| p.into_inner()).stage;
            if matches!(stage, Stage::Paused | Stage::Finished) {
                continue;
            }
            // Its end, taken once; a finished stand-in keeps `abort`/await safe later.
            let joined = std::mem::replace(&mut r.handle, tokio::spawn(async {}));
            let why = match joined.await {
                Err(e) if e.is_panic() => {
                    let p = e.into_panic();
                    let text = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    format!("panicked: {text}")
                }
                _ => {
                    let st = r.state.lock().unwrap_or_else(|p| p.into_inner());
                    match &st.last_error {
                        Some(e) => format!("[{}] {}", e.code, e.message),
                        None => "it ended".into(),
                    }
                }
            };
            r.restarts = if r.started.elapsed() >= STABLE_RUN {
                1
            } else {
                r.restarts + 1
            };
            let delay = RESTART_DELAY
                .saturating_mul(1 << (r.restarts - 1).min(6))
                .min(MAX_RESTART_DELAY);
            r.restart_at = Some(now + delay);
            let err = crate::Error::Crashed(format!(
                "{why}; restart {} in {delay:?} from the checkpoint",
                r.restarts
            ));
            tracing::error!(task = %k.0, source = %k.1, error = %err, "subtask stopped without a pause");
            let mut st = r.state.lock().unwrap_or_else(|p| p.into_inner());
            st.stage = Stage::Error;
            st.last_error = Some(err.report());
        }
        due
    }

    /// Runs a relay log for each bound source with `enable-relay`, in the stage a user set,
    /// and carries out `purge-relay` requests.
    async fn reconcile_relays(
        &mut self,
        sources: &BTreeMap<String, SourceConfig>,
        tasks: &[TaskConfig],
    ) -> crate::Result<()> {
        let stale: Vec<String> = self
            .relays
            .iter()
            .filter(|(id, r)| {
                sources
                    .get(*id)
                    .is_none_or(|c| !c.enable_relay || *c != r.cfg)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.relays.remove(&id);
            tracing::info!(source = %id, "relay stopped");
            if !sources.get(&id).is_some_and(|c| c.enable_relay) {
                self.store.delete(&keys::relay_status(&id)).await?;
            }
        }
        for (id, cfg) in sources.iter().filter(|(_, c)| c.enable_relay) {
            let run = self
                .relays
                .entry(id.clone())
                .or_insert_with(|| Relay::start(cfg.clone(), &self.data_dir));
            let stage =
                meta::get_json::<RelayStage>(self.store.as_ref(), &keys::relay_stage(id)).await?;
            run.relay.set_paused(stage == Some(RelayStage::Paused));
            let users: BTreeSet<String> = tasks
                .iter()
                .filter(|t| t.instance(id).is_some())
                .map(|t| t.name.clone())
                .collect();
            run.relay.retain_tasks(&users);
            let purge =
                meta::get_json::<PurgeRequest>(self.store.as_ref(), &keys::relay_purge(id)).await?;
            if let Some(req) = purge.filter(|r| r.id > run.relay.last_purge_id()) {
                run.relay.purge(req.id, req.filename.as_deref());
            }
        }
        Ok(())
    }

    /// The lease is gone: another worker may run these sources now. Stops every subtask
    /// without touching the store (it may be unreachable, and the status keys belong to the
    /// new worker by now).
    async fn stop_all(&mut self) -> crate::Result<()> {
        self.relays.clear();
        for (k, r) in std::mem::take(&mut self.running) {
            r.handle.abort();
            let _ = r.handle.await;
            tracing::warn!(task = %k.0, source = %k.1, "subtask stopped: this worker's lease ran out");
        }
        Ok(())
    }

    fn status_of(&self, k: &(String, String), r: Option<&Running>) -> SubtaskStatus {
        let (p, state) = match r {
            Some(r) => (
                r.progress.clone(),
                r.state.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            ),
            None => (
                Arc::new(Progress::default()),
                SubtaskState {
                    stage: Stage::Paused,
                    last_error: None,
                },
            ),
        };
        let (rows_per_sec, txns_per_sec) = p.rates();
        let online_ddl = p
            .online_ddl
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let joining = p.joining_tables();
        let tables = if p.phase() == Phase::Full {
            p.tables()
        } else {
            joining.clone().unwrap_or_default()
        };
        let rows_estimated = tables.rows_estimated;
        let rows_loaded = p.rows_loaded.load(Ordering::Relaxed);
        let eta_seconds = (p.phase() == Phase::Full && rows_per_sec > 0.0)
            .then(|| (rows_estimated.saturating_sub(rows_loaded) as f64 / rows_per_sec) as u64);
        let position = p.position();
        let queue_depth = p.queue_depth.load(Ordering::Relaxed);
        let binlog_retention = self.retention.report(k);
        let mut warnings = p.plugin_warnings();
        warnings.extend(
            binlog_retention
                .as_ref()
                .and_then(|r| r.warning(state.stage == Stage::Paused, eta_seconds)),
        );
        let synced = state.stage == Stage::Running
            && p.phase() == Phase::Incremental
            && p.idle.load(Ordering::Relaxed)
            && queue_depth == 0
            && joining.is_none();
        SubtaskStatus {
            task: k.0.clone(),
            source_id: k.1.clone(),
            worker: self.name.clone(),
            stage: state.stage,
            phase: p.phase(),
            tables_total: p.tables_total.load(Ordering::Relaxed),
            tables_done: p.tables_done.load(Ordering::Relaxed),
            rows_loaded,
            bytes_loaded: tables.bytes,
            rows_estimated,
            eta_seconds,
            tables: tables.listed,
            rows_applied: p.rows_applied.load(Ordering::Relaxed),
            txns_applied: p.txns_applied.load(Ordering::Relaxed),
            row_filter_batches: p.row_filter_batches.load(Ordering::Relaxed),
            rows_per_sec,
            txns_per_sec,
            queue_depth,
            position: position.clone(),
            lag_seconds: p.lag_seconds(),
            safe_mode: p.safe_mode.load(Ordering::Relaxed),
            last_error: state.last_error,
            updated_at: now_secs(),
            warnings,
            synced,
            master_binlog: synced.then(|| position.clone()),
            syncer_binlog: position.clone(),
            blocking_ddls: vec![],
            unresolved_groups: vec![],
            online_ddl,
            throttle: p.throttle.describe(),
            throttled: p.throttle.is_held(),
            binlog_retention,
        }
    }

    /// A subtask paused by a user runs nothing that publishes: when the watch's report of it
    /// changes, its stored status gets the new report and warning.
    async fn publish_paused_retention(&self) -> crate::Result<()> {
        for k in self.retention.take_changed() {
            if self.running.contains_key(&k) {
                continue;
            }
            let key = keys::status(&k.0, &k.1);
            let Some(mut st) = meta::get_json::<SubtaskStatus>(self.store.as_ref(), &key).await?
            else {
                continue;
            };
            let was = st.binlog_retention.take();
            let said = was.and_then(|r| r.warning(true, None));
            st.warnings.retain(|w| Some(w) != said.as_ref());
            st.binlog_retention = self.retention.report(&k);
            st.warnings.extend(
                st.binlog_retention
                    .as_ref()
                    .and_then(|r| r.warning(true, None)),
            );
            st.updated_at = now_secs();
            meta::put_json(self.store.as_ref(), &key, &st).await?;
        }
        Ok(())
    }

    async fn publish(&self) -> crate::Result<()> {
        if !self.fence.is_open() {
            return Ok(());
        }
        // A subtask fenced off by a lost lease has nothing true to say any more.
        let mut subtasks = vec![];
        for (k, r) in self.running.iter().filter(|(_, r)| r.fence.is_open()) {
            let st = self.status_of(k, Some(r));
            meta::put_json(self.store.as_ref(), &keys::status(&k.0, &k.1), &st).await?;
            subtasks.push(st);
        }
        self.publish_paused_retention().await?;
        let mut relays = vec![];
        for (id, run) in &self.relays {
            let st = run.relay.status(&self.name);
            meta::put_json(self.store.as_ref(), &keys::relay_status(id), &st).await?;
            relays.push(st);
        }
        *self.metrics.lock().unwrap_or_else(|p| p.into_inner()) =
            crate::metrics::render(&subtasks, &relays);
        Ok(())
    }
}
