//! Tasks: start (after the precheck), update, stop, pause and resume, the view `query-status`
//! shows, verify and check. The HTTP handlers (`http/`) are thin over these.

use super::Master;
use crate::api::types::{FileBody, Finding, Stopped, TaskView};
use crate::check::check_task;
use crate::checkpoint::MetaTables;
use crate::config::{SourceConfig, TaskConfig};
use crate::error::{DbRole, Error, ErrorReport};
use crate::meta::{self, keys};
use crate::status::{Stage, SubtaskStatus};
use crate::worker::DesiredStage;

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

/// `start-task`: the precheck, plugins stored, checkpoints removed with `remove_meta`, the
/// start time resolved, then the task and its desired stage stored.
pub async fn start(m: &Master, body: FileBody) -> Result<TaskView, Error> {
    let mut task = TaskConfig::parse(&body.file, &body.content)?;
    let sources = task_sources(m, &task).await?;
    if m.store.get(&keys::task(&task.name)).await?.is_some() {
        return Err(already_running(&task.name));
    }
    let mut warnings = vec![];
    if !body.skip_precheck {
        let (failures, warned) = precheck(m, &task, &sources, body.remove_meta).await?;
        if !failures.is_empty() {
            return Err(Error::Precheck(failures.join("; ")));
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
        return Err(already_running(&task.name));
    }
    let stage = DesiredStage::new(Stage::Running, 1);
    meta::put_json(m.store.as_ref(), &keys::stage(&task.name), &stage).await?;
    m.task_files.watch(m, &task.name, &body.file, &body.content);
    let compat = task.compat_warnings(&body.file, &body.content);
    let mut view = task_view(m, task).await?;
    view.warnings.extend(compat);
    view.warnings.extend(warnings);
    Ok(view)
}

fn already_running(name: &str) -> Error {
    Error::Invalid(format!(
        "task `{name}` is already running: `dm ctl update-task <file>` applies a changed file to it (tables added to its rules are copied and join it without a stop); else stop-task first, or pause/resume it"
    ))
}

/// `check-task` as `start-task` runs it: (failures that stop the start, warnings), each
/// with its fix; failures the task's `ignore-checking-items` name become warnings. `fresh`:
/// the task's checkpoints are removed (`--remove-meta`), so it does not resume from them.
async fn precheck(
    m: &Master,
    task: &TaskConfig,
    sources: &[SourceConfig],
    fresh: bool,
) -> Result<(Vec<String>, Vec<String>), Error> {
    let mut failures = vec![];
    let mut warnings = vec![];
    for f in findings_of(m, task, sources, fresh).await? {
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
    fresh: bool,
) -> Result<Vec<Finding>, Error> {
    let mut findings = check_task(task, sources, fresh).await;
    for src in sources {
        let status: Option<crate::upstream::relay::RelayStatus> =
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
            row_filter_batches: s.row_filter_batches,
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
                code: crate::error::codes::NO_WORKER.into(),
                message: format!("no worker runs source `{source_id}`"),
                hint: "start a worker (`dm worker -c worker.yaml`) or free one; the subtask starts as soon as one is free".into(),
                retryable: true,
                position: None,
            });
        }
    }
    Ok(st)
}

/// The stage users asked for of task `name`, with what they decided at runtime (binlog
/// operators, throttle).
pub(super) async fn load_stage(m: &Master, name: &str) -> Result<DesiredStage, Error> {
    meta::get_json::<DesiredStage>(m.store.as_ref(), &keys::stage(name))
        .await?
        .ok_or_else(|| Error::NotFound(format!("task `{name}` has no stage")))
}

/// Changes the desired stage of task `name` with `change` (again, on a fresh copy, if
/// something else changed it meanwhile: runtime decisions made at once all stay).
pub(super) async fn update_stage(
    m: &Master,
    name: &str,
    change: impl FnMut(&mut DesiredStage) -> Result<(), Error>,
) -> Result<DesiredStage, Error> {
    meta::update_json(m.store.as_ref(), &keys::stage(name), change)
        .await?
        .ok_or_else(|| Error::NotFound(format!("task `{name}` has no stage")))
}

pub(super) async fn load_task(m: &Master, name: &str) -> Result<TaskConfig, Error> {
    meta::get_json::<TaskConfig>(m.store.as_ref(), &keys::task(name))
        .await?
        .ok_or_else(|| Error::NotFound(format!("task `{name}` does not exist")))
}

/// Every task (`query-status`).
pub async fn list(m: &Master) -> Result<Vec<TaskView>, Error> {
    let mut out = vec![];
    for (_, t) in meta::list_json::<TaskConfig>(m.store.as_ref(), keys::TASK).await? {
        out.push(task_view(m, t).await?);
    }
    Ok(out)
}

pub async fn get(m: &Master, name: &str) -> Result<TaskView, Error> {
    let task = load_task(m, name).await?;
    task_view(m, task).await
}

/// `stop-task`: the whole task, or with `sources` those sources' subtasks alone (the task
/// goes on with the others). Checkpoints stay in the target.
pub async fn stop(m: &Master, name: &str, sources: Vec<String>) -> Result<Stopped, Error> {
    let mut task = load_task(m, name).await?;
    if let Some(s) = sources.iter().find(|s| task.instance(s).is_none()) {
        return Err(Error::NotFound(format!(
            "task `{name}` has no source `{s}`"
        )));
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
        m.store.put(&keys::task(name), value).await?;
        for s in &sources {
            m.store.delete(&keys::status(name, s)).await?;
        }
        return Ok(Stopped {
            stopped: name.to_string(),
            sources,
        });
    }
    m.store.delete(&keys::stage(name)).await?;
    m.store.delete(&keys::task(name)).await?;
    m.store.delete(&keys::validation(name)).await?;
    m.store.delete(&keys::validation_status(name)).await?;
    Ok(Stopped {
        stopped: name.to_string(),
        sources: vec![],
    })
}

/// `verify`: source and target compared chunk by chunk; `fix` repairs the target.
pub async fn verify(
    m: &Master,
    name: &str,
    fix: bool,
) -> Result<Vec<crate::verify::TableReport>, Error> {
    let task = load_task(m, name).await?;
    let sources = task_sources(m, &task).await?;
    crate::verify::verify(&task, &sources, fix).await
}

/// `update-task`: a changed task file (rules, plugins, tuning) for a running task; its
/// subtasks restart from their checkpoints with it. Sources, target and mode stay.
pub async fn update(m: &Master, name: &str, body: FileBody) -> Result<TaskView, Error> {
    let task = apply_update(m, name, &body).await?;
    m.task_files.watch(m, &task.name, &body.file, &body.content);
    task_view(m, task).await
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
pub async fn set_stage(
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
    let mut change = |desired: &mut DesiredStage| {
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
        Ok(())
    };
    let key = keys::stage(name);
    if meta::update_json(m.store.as_ref(), &key, &mut change)
        .await?
        .is_none()
    {
        let mut desired = DesiredStage::new(stage, 0);
        change(&mut desired)?;
        meta::put_json(m.store.as_ref(), &key, &desired).await?;
    }
    task_view(m, task).await
}

/// `check-task`: every finding for a task file, its TiDB DM fields dm ignores included.
pub async fn check(m: &Master, body: FileBody) -> Result<Vec<Finding>, Error> {
    let task = TaskConfig::parse(&body.file, &body.content)?;
    let sources = task_sources(m, &task).await?;
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
    findings.extend(findings_of(m, &task, &sources, false).await?);
    Ok(findings)
}
