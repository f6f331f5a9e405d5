//! HTTP/JSON API of the master (`/api/v1/...`). Every error answers with
//! `{code, message, hint}` and a 4xx/5xx status.

use super::{
    binlog_ops, binlog_schema, config_api, forward, members, relay, shard_locks, validation, Master,
};
use crate::check::{check_task, probe_source, Finding};
use crate::checkpoint::MetaTables;
use crate::config::{SourceConfig, TaskConfig};
use crate::error::{DbRole, Error, ErrorReport};
use crate::meta::{self, keys};
use crate::status::{Stage, SubtaskStatus};
use crate::worker::DesiredStage;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// A config file sent by `dm ctl`: its name (for messages) and text.
#[derive(Debug, Serialize, Deserialize)]
pub struct FileBody {
    pub file: String,
    pub content: String,
    #[serde(default)]
    pub remove_meta: bool,
    /// `start-task --skip-precheck`: start even when `check-task` finds failures.
    #[serde(default)]
    pub skip_precheck: bool,
    /// `start-task --start-time`: replicate from the first transaction at or after this time.
    #[serde(default)]
    pub start_time: Option<String>,
    /// Plugin modules of a task file (name -> base64), read where `dm ctl` runs.
    #[serde(default)]
    pub plugins: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SourceView {
    pub source_id: String,
    pub address: String,
    pub user: String,
    pub enable_gtid: bool,
    pub worker: Option<String>,
    #[serde(default)]
    pub enable_relay: bool,
    /// What the worker reports of the source's relay log.
    #[serde(default)]
    pub relay: Option<crate::relay::RelayStatus>,
    /// What dm did with TiDB DM's fields of the source file (create-source only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl SourceView {
    async fn of(m: &Master, s: SourceConfig) -> Result<SourceView, Error> {
        let worker = m
            .store
            .get(&keys::bound(&s.source_id))
            .await?
            .map(|w| String::from_utf8_lossy(&w).into_owned());
        let relay = if s.enable_relay {
            meta::get_json(m.store.as_ref(), &keys::relay_status(&s.source_id)).await?
        } else {
            None
        };
        Ok(SourceView {
            address: s.from.addr(),
            user: s.from.user.clone(),
            enable_gtid: s.enable_gtid,
            enable_relay: s.enable_relay,
            source_id: s.source_id,
            worker,
            relay,
            warnings: vec![],
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TaskView {
    pub name: String,
    pub task_mode: String,
    pub stage: Stage,
    pub subtasks: Vec<SubtaskStatus>,
    /// Why the last edit of the task file was not applied (the task runs as before).
    #[serde(default)]
    pub warnings: Vec<String>,
}

pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Config { .. } | Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::Db { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::MetaUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let report: ErrorReport = self.0.report();
        (status, Json(report)).into_response()
    }
}

pub(super) type ApiResult<T> = Result<Json<T>, ApiError>;

/// The API, behind `guard` (Host, content type, tokens: `api_auth`).
/// The largest request body the API reads.
const API_BODY_LIMIT: usize = 8 * 1024 * 1024;

pub fn router(master: Master, guard: crate::api_auth::ApiGuard) -> Router {
    Router::new()
        .route("/api/v1/sources", get(list_sources).post(create_source))
        .route("/api/v1/sources/{id}", delete(stop_source))
        .route("/api/v1/sources/{id}/update", post(update_source))
        .route("/api/v1/tasks", get(query_status).post(start_task))
        .route("/api/v1/tasks/check", post(check))
        .route("/api/v1/tasks/{name}", get(query_task).delete(stop_task))
        .route("/api/v1/tasks/{name}/pause", post(pause_task))
        .route("/api/v1/tasks/{name}/update", post(update_task))
        .route("/api/v1/tasks/{name}/verify", post(verify_task))
        .route("/api/v1/tasks/{name}/resume", post(resume_task))
        .route(
            "/api/v1/tasks/{name}/binlog-skip",
            post(binlog_ops::binlog_skip),
        )
        .route("/api/v1/tasks/{name}/binlog", get(binlog_ops::binlog_list))
        .route(
            "/api/v1/tasks/{name}/binlog-revert",
            post(binlog_ops::binlog_revert),
        )
        .route(
            "/api/v1/tasks/{name}/binlog-schema",
            get(binlog_schema::list).post(binlog_schema::change),
        )
        .route(
            "/api/v1/tasks/{name}/binlog-replace",
            post(binlog_ops::binlog_replace),
        )
        .route(
            "/api/v1/tasks/{name}/binlog-inject",
            post(binlog_ops::binlog_inject),
        )
        .route("/api/v1/tasks/{name}/validation", get(validation::status))
        .route(
            "/api/v1/tasks/{name}/validation/start",
            post(validation::start),
        )
        .route(
            "/api/v1/tasks/{name}/validation/stop",
            post(validation::stop),
        )
        .route("/api/v1/sources/{id}/transfer", post(members::transfer))
        .route("/api/v1/sources/{id}/relay/{op}", post(relay::operate))
        .route("/api/v1/shard-ddl-locks", get(shard_locks::list))
        .route("/api/v1/shard-ddl-locks/unlock", post(shard_locks::unlock))
        .route("/api/v1/members", get(members::list))
        .route("/api/v1/config", get(config_api::export))
        .route("/api/v1/config/{kind}/{name}", get(config_api::get))
        .route("/api/v1/members/{kind}/{name}", delete(members::offline))
        .route("/api/v1/leader/{op}", post(members::operate_leader))
        .route("/api/v1/cluster/etcd", get(members::etcd_endpoints))
        .route("/metrics", get(metrics))
        // Task files with their plugin modules (each at most 1 MiB, base64) fit; nothing
        // bigger is read into memory.
        .layer(axum::extract::DefaultBodyLimit::max(API_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            master.clone(),
            forward::to_leader,
        ))
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(guard),
            crate::api_auth::guard,
        ))
        .with_state(master)
}

async fn list_sources(State(m): State<Master>) -> ApiResult<Vec<SourceView>> {
    let mut out = vec![];
    for (_, s) in meta::list_json::<SourceConfig>(m.store.as_ref(), keys::SOURCE).await? {
        out.push(SourceView::of(&m, s).await?);
    }
    Ok(Json(out))
}

async fn create_source(
    State(m): State<Master>,
    Json(body): Json<FileBody>,
) -> ApiResult<SourceView> {
    let mut src = SourceConfig::parse(&body.file, &body.content)?;
    probe_source(&src).await?;
    src.from.seal_password()?;
    let key = keys::source(&src.source_id);
    let value = serde_json::to_vec(&src).map_err(|e| Error::Invalid(e.to_string()))?;
    if !m.store.compare_and_put(&key, None, value).await? {
        return Err(Error::Invalid(format!(
            "source `{}` already exists; `dm ctl operate-source stop {}` first to change it",
            src.source_id, src.source_id
        ))
        .into());
    }
    // A cluster's leader binds it to a free worker; standalone has one.
    if let Some(w) = &m.standalone_worker {
        m.store
            .put(&keys::bound(&src.source_id), w.clone().into_bytes())
            .await?;
    }
    let mut view = SourceView::of(&m, src).await?;
    view.warnings = SourceConfig::compat_warnings(&body.file, &body.content);
    Ok(Json(view))
}

/// `operate-source update` (TiDB DM's): a source's file replaced while no task uses it.
async fn update_source(
    State(m): State<Master>,
    Path(id): Path<String>,
    Json(body): Json<FileBody>,
) -> ApiResult<SourceView> {
    let mut src = SourceConfig::parse(&body.file, &body.content)?;
    if src.source_id != id {
        return Err(Error::Invalid(format!(
            "the file is for source `{}`, not `{id}`",
            src.source_id
        ))
        .into());
    }
    let key = keys::source(&id);
    let Some(old) = m.store.get(&key).await? else {
        return Err(Error::NotFound(format!(
            "source `{id}` does not exist; `dm ctl operate-source create` it"
        ))
        .into());
    };
    for (_, t) in meta::list_json::<TaskConfig>(m.store.as_ref(), keys::TASK).await? {
        if t.instance(&id).is_some() {
            return Err(Error::Invalid(format!(
                "source `{id}` is used by task `{}`; stop the task first (its checkpoints stay), update, start it again",
                t.name
            ))
            .into());
        }
    }
    probe_source(&src).await?;
    src.from.seal_password()?;
    let value = serde_json::to_vec(&src).map_err(|e| Error::Invalid(e.to_string()))?;
    if !m.store.compare_and_put(&key, Some(&old), value).await? {
        return Err(Error::Invalid(format!(
            "source `{id}` changed while it was being updated; try again"
        ))
        .into());
    }
    let mut view = SourceView::of(&m, src).await?;
    view.warnings = SourceConfig::compat_warnings(&body.file, &body.content);
    Ok(Json(view))
}

async fn stop_source(
    State(m): State<Master>,
    Path(id): Path<String>,
) -> ApiResult<serde_json::Value> {
    if m.store.get(&keys::source(&id)).await?.is_none() {
        return Err(Error::NotFound(format!("source `{id}` does not exist")).into());
    }
    for (_, t) in meta::list_json::<TaskConfig>(m.store.as_ref(), keys::TASK).await? {
        if t.instance(&id).is_some() {
            return Err(Error::Invalid(format!(
                "source `{id}` is used by task `{}`; stop the task first",
                t.name
            ))
            .into());
        }
    }
    m.store.delete(&keys::bound(&id)).await?;
    m.store.delete(&keys::source(&id)).await?;
    for key in [
        keys::relay_stage(&id),
        keys::relay_purge(&id),
        keys::relay_status(&id),
    ] {
        m.store.delete(&key).await?;
    }
    Ok(Json(serde_json::json!({ "stopped": id })))
}

async fn task_sources(m: &Master, task: &TaskConfig) -> Result<Vec<SourceConfig>, Error> {
    let mut out = vec![];
    for inst in &task.mysql_instances {
        match meta::get_json::<SourceConfig>(m.store.as_ref(), &keys::source(&inst.source_id)).await? {
            Some(s) => out.push(s),
            None => {
                return Err(Error::NotFound(format!(
                    "task `{}` names source `{}`, which does not exist; create it with `dm ctl operate-source create`",
                    task.name, inst.source_id
                )))
            }
        }
    }
    Ok(out)
}

async fn start_task(State(m): State<Master>, Json(body): Json<FileBody>) -> ApiResult<TaskView> {
    let mut task = TaskConfig::parse(&body.file, &body.content)?;
    let sources = task_sources(&m, &task).await?;
    if m.store.get(&keys::task(&task.name)).await?.is_some() {
        return Err(already_running(&task.name).into());
    }
    let mut warnings = vec![];
    if !body.skip_precheck {
        let (failures, warned) = precheck(&m, &task, &sources).await?;
        if !failures.is_empty() {
            return Err(Error::Precheck(failures.join("; ")).into());
        }
        warnings = warned;
    }
    meta::plugins::store_task_plugins(m.store.as_ref(), &mut task, &body.plugins).await?;
    if body.remove_meta {
        let mut conn = crate::db::connect(&task.target_database, DbRole::Target).await?;
        let tables = MetaTables::new(&task.meta_schema, &task.name);
        tables
            .create(&mut conn, &task.target_database.addr())
            .await?;
        for inst in &task.mysql_instances {
            tables
                .remove(&mut conn, &task.target_database.addr(), &inst.source_id)
                .await?;
        }
        crate::shard::remove_task_state(m.store.as_ref(), &task.name).await?;
    }
    if let Some(text) = &body.start_time {
        warnings.extend(super::start_time::set(&task, &sources, text).await?);
    }
    task.target_database.seal_password()?;
    let key = keys::task(&task.name);
    let value = serde_json::to_vec(&task).map_err(|e| Error::Invalid(e.to_string()))?;
    if !m.store.compare_and_put(&key, None, value).await? {
        return Err(already_running(&task.name).into());
    }
    let stage = DesiredStage::new(Stage::Running, 1);
    meta::put_json(m.store.as_ref(), &keys::stage(&task.name), &stage).await?;
    m.task_files.watch(&m, &task.name, &body.file);
    let compat = task.compat_warnings(&body.file, &body.content);
    let mut view = task_view(&m, task).await?;
    view.warnings.extend(compat);
    view.warnings.extend(warnings);
    Ok(Json(view))
}

fn already_running(name: &str) -> Error {
    Error::Invalid(format!(
        "task `{name}` is already running; stop-task first, or pause/resume it"
    ))
}

/// `check-task` as `start-task` runs it: (failures that stop the start, warnings), each
/// with its fix; failures the task's `ignore-checking-items` name become warnings.
async fn precheck(
    m: &Master,
    task: &TaskConfig,
    sources: &[SourceConfig],
) -> Result<(Vec<String>, Vec<String>), Error> {
    let mut failures = vec![];
    let mut warnings = vec![];
    for f in findings_of(m, task, sources).await? {
        let text = format!("{} {}: {} (fix: {})", f.subject, f.check, f.message, f.fix);
        match f.level {
            crate::check::Level::Fail if !crate::check::ignored(task, &f) => failures.push(text),
            crate::check::Level::Fail => {
                warnings.push(format!("ignored by ignore-checking-items: {text}"))
            }
            crate::check::Level::Warn => warnings.push(text),
            crate::check::Level::Ok => {}
        }
    }
    Ok((failures, warnings))
}

/// Every finding of `check-task` for `task`.
async fn findings_of(
    m: &Master,
    task: &TaskConfig,
    sources: &[SourceConfig],
) -> Result<Vec<Finding>, Error> {
    let mut findings = check_task(task, sources).await;
    for src in sources {
        let status: Option<crate::relay::RelayStatus> =
            meta::get_json(m.store.as_ref(), &keys::relay_status(&src.source_id)).await?;
        findings.extend(crate::check::relay_space(src, status.as_ref()));
    }
    Ok(findings)
}

pub(super) async fn task_view(m: &Master, task: TaskConfig) -> Result<TaskView, Error> {
    let desired =
        meta::get_json::<DesiredStage>(m.store.as_ref(), &keys::stage(&task.name)).await?;
    let stage = desired.as_ref().map(|s| s.stage).unwrap_or(Stage::New);
    let mut subtasks = Vec::with_capacity(task.mysql_instances.len());
    for inst in &task.mysql_instances {
        let of_source = desired
            .as_ref()
            .map(|d| d.stage_of(&inst.source_id))
            .unwrap_or(stage);
        subtasks.push(subtask_view(m, &task.name, &inst.source_id, of_source).await?);
    }
    if task.shard_mode.is_some() {
        blocking_ddls(m, &task, &mut subtasks).await?;
    }
    Ok(TaskView {
        warnings: m.task_files.warning(&task.name).into_iter().collect(),
        name: task.name.clone(),
        task_mode: task.task_mode.name().into(),
        stage,
        subtasks,
    })
}

/// TiDB DM's `blockingDDLs` and `unresolvedGroups` of each subtask: the shard DDLs its
/// source sent that a merged table's lock still holds, and those merged tables.
async fn blocking_ddls(
    m: &Master,
    task: &TaskConfig,
    subtasks: &mut [SubtaskStatus],
) -> Result<(), Error> {
    let locks = crate::shard::coordinator::task_locks(m.store.as_ref(), task).await?;
    for (target, arrived) in locks.pending.iter().filter(|(_, a)| !a.is_empty()) {
        for st in subtasks.iter_mut() {
            let in_group = locks
                .shards
                .get(target)
                .is_some_and(|s| s.iter().any(|sh| sh.source == st.source_id));
            if in_group {
                st.unresolved_groups.push(target.clone());
            }
            st.blocking_ddls.extend(
                arrived
                    .iter()
                    .filter(|d| d.shard.source == st.source_id)
                    .flat_map(|d| d.ddls.iter().cloned()),
            );
        }
    }
    Ok(())
}

/// What a subtask is doing, as far as the master can tell: the worker's report when the
/// worker that reported is the one bound to the source now; otherwise a report of its own
/// (waiting for a worker, or starting on the newly bound one).
async fn subtask_view(
    m: &Master,
    task: &str,
    source_id: &str,
    desired: Stage,
) -> Result<SubtaskStatus, Error> {
    let status =
        meta::get_json::<SubtaskStatus>(m.store.as_ref(), &keys::status(task, source_id)).await?;
    let bound = m
        .store
        .get(&keys::bound(source_id))
        .await?
        .map(|w| String::from_utf8_lossy(&w).into_owned());
    let mut st = match (status, &bound) {
        (Some(s), Some(w)) if s.worker == *w => return Ok(s),
        (Some(s), _) => SubtaskStatus {
            // The last report of a worker that is gone: keep its counters, not its stage.
            position: s.position,
            phase: s.phase,
            rows_loaded: s.rows_loaded,
            rows_applied: s.rows_applied,
            txns_applied: s.txns_applied,
            ..Default::default()
        },
        (None, _) => SubtaskStatus::default(),
    };
    st.task = task.to_string();
    st.source_id = source_id.to_string();
    st.updated_at = crate::status::now_secs();
    match bound {
        Some(w) => {
            st.worker = w;
            st.stage = if desired == Stage::Running {
                Stage::New
            } else {
                desired
            };
        }
        None => {
            st.stage = Stage::Waiting;
            st.last_error = Some(ErrorReport {
                code: "DM-CLUSTER-2102".into(),
                message: format!("no worker runs source `{source_id}`"),
                hint: "start a worker (`dm worker -c worker.yaml`) or free one; the subtask starts as soon as one is free".into(),
                retryable: true,
                position: None,
            });
        }
    }
    Ok(st)
}

pub(super) async fn load_task(m: &Master, name: &str) -> Result<TaskConfig, Error> {
    meta::get_json::<TaskConfig>(m.store.as_ref(), &keys::task(name))
        .await?
        .ok_or_else(|| Error::NotFound(format!("task `{name}` does not exist")))
}

async fn query_status(State(m): State<Master>) -> ApiResult<Vec<TaskView>> {
    let mut out = vec![];
    for (_, t) in meta::list_json::<TaskConfig>(m.store.as_ref(), keys::TASK).await? {
        out.push(task_view(&m, t).await?);
    }
    Ok(Json(out))
}

async fn query_task(State(m): State<Master>, Path(name): Path<String>) -> ApiResult<TaskView> {
    let task = load_task(&m, &name).await?;
    Ok(Json(task_view(&m, task).await?))
}

#[derive(Deserialize, Default)]
struct StopQuery {
    /// Comma-separated sources whose subtasks stop (TiDB DM's `stop-task -s`); the task
    /// goes on with the others.
    #[serde(default)]
    sources: Option<String>,
}

async fn stop_task(
    State(m): State<Master>,
    Path(name): Path<String>,
    axum::extract::Query(q): axum::extract::Query<StopQuery>,
) -> ApiResult<serde_json::Value> {
    let mut task = load_task(&m, &name).await?;
    let sources: Vec<String> = q
        .sources
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(s) = sources.iter().find(|s| task.instance(s).is_none()) {
        return Err(Error::NotFound(format!("task `{name}` has no source `{s}`")).into());
    }
    let keep = task
        .mysql_instances
        .iter()
        .filter(|i| !sources.contains(&i.source_id))
        .count();
    if !sources.is_empty() && keep > 0 {
        // The task goes on without these sources; their checkpoints stay in the target.
        task.mysql_instances
            .retain(|i| !sources.contains(&i.source_id));
        let value = serde_json::to_vec(&task).map_err(|e| Error::Invalid(e.to_string()))?;
        m.store.put(&keys::task(&name), value).await?;
        for s in &sources {
            m.store.delete(&keys::status(&name, s)).await?;
        }
        return Ok(Json(
            serde_json::json!({ "stopped": name, "sources": sources }),
        ));
    }
    m.store.delete(&keys::stage(&name)).await?;
    m.store.delete(&keys::task(&name)).await?;
    m.store.delete(&keys::validation(&name)).await?;
    m.store.delete(&keys::validation_status(&name)).await?;
    Ok(Json(serde_json::json!({ "stopped": name })))
}

#[derive(Deserialize)]
struct VerifyBody {
    #[serde(default)]
    fix: bool,
}

/// `verify`: source and target compared chunk by chunk; `fix` repairs the target.
async fn verify_task(
    State(m): State<Master>,
    Path(name): Path<String>,
    Json(body): Json<VerifyBody>,
) -> ApiResult<Vec<crate::verify::TableReport>> {
    let task = load_task(&m, &name).await?;
    let sources = task_sources(&m, &task).await?;
    Ok(Json(
        crate::verify::verify(&task, &sources, body.fix).await?,
    ))
}

/// `update-task`: a changed task file (rules, plugins, tuning) for a running task; its
/// subtasks restart from their checkpoints with it. Sources, target and mode stay.
async fn update_task(
    State(m): State<Master>,
    Path(name): Path<String>,
    Json(body): Json<FileBody>,
) -> ApiResult<TaskView> {
    let task = apply_update(&m, &name, &body).await?;
    m.task_files.watch(&m, &task.name, &body.file);
    Ok(Json(task_view(&m, task).await?))
}

/// Checks a changed task file against the running task and stores it.
pub(super) async fn apply_update(
    m: &Master,
    name: &str,
    body: &FileBody,
) -> Result<TaskConfig, Error> {
    let old = load_task(m, name).await?;
    let mut task = TaskConfig::parse(&body.file, &body.content)?;
    // Stored encrypted: the same password written in clear (or encrypted again) is no change.
    if crate::secret::same(
        &task.target_database.password,
        &old.target_database.password,
    ) {
        task.target_database.password = old.target_database.password.clone();
    }
    let sources = |t: &TaskConfig| {
        t.mysql_instances
            .iter()
            .map(|i| i.source_id.clone())
            .collect::<Vec<_>>()
    };
    if task.name != old.name
        || sources(&task) != sources(&old)
        || task.target_database != old.target_database
        || task.task_mode != old.task_mode
    {
        return Err(Error::Invalid(format!(
            "update-task changes rules, plugins and tuning of task `{name}`; its name, sources, target and task-mode stay (stop-task and start-task to change those)"
        )));
    }
    meta::plugins::store_task_plugins(m.store.as_ref(), &mut task, &body.plugins).await?;
    if task != old {
        meta::put_json(m.store.as_ref(), &keys::task(name), &task).await?;
        tracing::info!(task = %name, "task updated");
    }
    Ok(task)
}

/// `pause-task` / `resume-task`, of the whole task or, with `sources`, of those sources'
/// subtasks alone (TiDB DM's `-s`).
#[derive(Deserialize, Default)]
struct StageBody {
    #[serde(default)]
    sources: Vec<String>,
}

async fn set_stage(
    m: &Master,
    name: &str,
    stage: Stage,
    sources: &[String],
) -> Result<TaskView, Error> {
    let task = load_task(m, name).await?;
    for s in sources {
        if task.instance(s).is_none() {
            return Err(Error::NotFound(format!(
                "task `{name}` has no source `{s}`"
            )));
        }
    }
    let key = keys::stage(name);
    let current = meta::get_json::<DesiredStage>(m.store.as_ref(), &key).await?;
    let mut desired = current.unwrap_or(DesiredStage::new(stage, 0));
    if sources.is_empty() {
        desired.stage = stage;
        desired.generation += u64::from(stage == Stage::Running);
        desired.paused_sources.clear();
    } else if stage == Stage::Running {
        for s in sources {
            desired.paused_sources.remove(s);
            *desired.source_generations.entry(s.clone()).or_default() += 1;
        }
    } else {
        desired.paused_sources.extend(sources.iter().cloned());
    }
    meta::put_json(m.store.as_ref(), &key, &desired).await?;
    task_view(m, task).await
}

async fn pause_task(
    State(m): State<Master>,
    Path(name): Path<String>,
    body: Option<Json<StageBody>>,
) -> ApiResult<TaskView> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    Ok(Json(
        set_stage(&m, &name, Stage::Paused, &body.sources).await?,
    ))
}

async fn resume_task(
    State(m): State<Master>,
    Path(name): Path<String>,
    body: Option<Json<StageBody>>,
) -> ApiResult<TaskView> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    Ok(Json(
        set_stage(&m, &name, Stage::Running, &body.sources).await?,
    ))
}

async fn check(State(m): State<Master>, Json(body): Json<FileBody>) -> ApiResult<Vec<Finding>> {
    let task = TaskConfig::parse(&body.file, &body.content)?;
    let sources = task_sources(&m, &task).await?;
    let mut findings: Vec<Finding> = task
        .compat_warnings(&body.file, &body.content)
        .into_iter()
        .map(|w| Finding {
            subject: body.file.clone(),
            check: "tidb_dm_field".into(),
            level: crate::check::Level::Warn,
            message: w,
            fix: "remove the field, or keep it: it has no effect (docs/config.md)".into(),
        })
        .collect();
    findings.extend(findings_of(&m, &task, &sources).await?);
    Ok(Json(findings))
}

/// Prometheus text format: per subtask, stage, rows and lag.
async fn metrics(State(m): State<Master>) -> Result<String, ApiError> {
    let statuses: Vec<SubtaskStatus> =
        meta::list_json::<SubtaskStatus>(m.store.as_ref(), keys::STATUS)
            .await?
            .into_iter()
            .map(|(_, s)| s)
            .collect();
    let relays: Vec<crate::relay::RelayStatus> =
        meta::list_json(m.store.as_ref(), keys::RELAY_STATUS)
            .await?
            .into_iter()
            .map(|(_, s)| s)
            .collect();
    let mut out = crate::metrics::render(&statuses, &relays);
    shard_metrics(&m, &mut out).await?;
    out.push_str(
        "# HELP dm_validation_differences Rows that differ between source and target at the last validation run.\n# TYPE dm_validation_differences gauge\n",
    );
    for (_, v) in
        meta::list_json::<validation::ValidationStatus>(m.store.as_ref(), keys::VALIDATION_STATUS)
            .await?
    {
        out.push_str(&format!(
            "dm_validation_differences{{task=\"{}\"}} {}\n",
            v.task, v.differences
        ));
    }
    if let Some(c) = &m.cluster {
        out.push_str(&format!(
            "# HELP dm_master_is_leader 1 on the leading master.\n# TYPE dm_master_is_leader gauge\ndm_master_is_leader {}\n",
            u8::from(c.is_leader())
        ));
        let workers = m.store.list(keys::ALIVE_WORKER).await?.len();
        let bound = m.store.list(keys::BOUND).await?.len();
        out.push_str(&format!(
            "# HELP dm_workers_alive Workers holding a lease.\n# TYPE dm_workers_alive gauge\ndm_workers_alive {workers}\n\
             # HELP dm_sources_bound Sources bound to a worker.\n# TYPE dm_sources_bound gauge\ndm_sources_bound {bound}\n"
        ));
    }
    Ok(out)
}

/// Shard DDL locks: DDLs waiting per merged table, and conflicts.
async fn shard_metrics(m: &Master, out: &mut String) -> Result<(), Error> {
    out.push_str(
        "# HELP dm_shard_ddl_pending Shard DDLs waiting for a decision, per merged table.\n# TYPE dm_shard_ddl_pending gauge\n\
         # HELP dm_shard_ddl_conflict 1 when a merged table's lock is in conflict.\n# TYPE dm_shard_ddl_conflict gauge\n",
    );
    for (_, task) in meta::list_json::<TaskConfig>(m.store.as_ref(), keys::TASK).await? {
        if task.shard_mode.is_none() {
            continue;
        }
        let locks = crate::shard::coordinator::task_locks(m.store.as_ref(), &task).await?;
        for (target, pending) in &locks.pending {
            out.push_str(&format!(
                "dm_shard_ddl_pending{{task=\"{}\",target=\"{target}\"}} {}\n",
                task.name,
                pending.len()
            ));
        }
        for (key, lock) in meta::list_json::<crate::shard::LockState>(
            m.store.as_ref(),
            &crate::shard::lock_prefix(&task.name),
        )
        .await?
        {
            let target = key.rsplit('/').next().unwrap_or_default();
            out.push_str(&format!(
                "dm_shard_ddl_conflict{{task=\"{}\",target=\"{target}\"}} {}\n",
                task.name,
                u8::from(lock.conflict.is_some())
            ));
        }
    }
    Ok(())
}
