//! `binlog skip|replace|inject|list|revert`: what a user decides about a source transaction
//! a task stopped at (or will reach), recorded with the task's desired stage per source and
//! position; the subtasks restart and act on it when they get there.

use super::tasks::{load_task, task_view};
use super::{shard_locks, Master};
use crate::api::types::{BinlogAt, BinlogOperator, BinlogStatements, TaskView};
use crate::error::Error;
use crate::meta::{self, keys};
use crate::status::{Stage, SubtaskStatus};
use crate::worker::DesiredStage;

/// `binlog skip`: the transaction each paused subtask of the task stopped at is skipped, and
/// the task resumes.
pub async fn skip(m: &Master, name: &str, at: &BinlogAt) -> Result<TaskView, Error> {
    let record =
        |d: &mut DesiredStage, source: String, p: String| d.skip.entry(source).or_default().push(p);
    if at.position.is_some() {
        return at_position(m, name, at, record).await;
    }
    at_paused_events(m, name, OnShardDdl::Skip, record).await
}

/// Records `op` for the transaction ending at `at.position` of `at.source`; the task's
/// subtasks restart and act on it when they reach it.
async fn at_position(
    m: &Master,
    name: &str,
    at: &BinlogAt,
    mut op: impl FnMut(&mut DesiredStage, String, String),
) -> Result<TaskView, Error> {
    let task = load_task(m, name).await?;
    let position = at.position.clone().unwrap_or_default();
    if crate::position::BinlogPos::parse(&position).is_none() {
        return Err(Error::Invalid(format!(
            "`{position}` is not a binlog position: give the end of the transaction as file:pos (`dm ctl query-status` and the error show them)"
        )));
    }
    let source = task.source_named(at.source.as_deref())?;
    let key = keys::stage(name);
    let mut desired = meta::get_json::<DesiredStage>(m.store.as_ref(), &key)
        .await?
        .ok_or_else(|| Error::NotFound(format!("task `{name}` has no stage")))?;
    op(&mut desired, source, position);
    desired.generation += 1;
    meta::put_json(m.store.as_ref(), &key, &desired).await?;
    task_view(m, task).await
}

/// `binlog revert -b file:pos`: forgets the skip, replacement or injection recorded for
/// that position (TiDB DM's command); the subtasks restart without it.
pub async fn revert(m: &Master, name: &str, at: &BinlogAt) -> Result<TaskView, Error> {
    let task = load_task(m, name).await?;
    let position = at.position.clone().ok_or_else(|| {
        Error::Invalid("binlog revert needs the position (-b file:pos) of the operation".into())
    })?;
    let source = task.source_named(at.source.as_deref())?;
    let key = keys::stage(name);
    let mut desired = meta::get_json::<DesiredStage>(m.store.as_ref(), &key)
        .await?
        .ok_or_else(|| Error::NotFound(format!("task `{name}` has no stage")))?;
    let mut removed = 0;
    if let Some(ps) = desired.skip.get_mut(&source) {
        let before = ps.len();
        ps.retain(|p| *p != position);
        removed += before - ps.len();
    }
    for ops in [&mut desired.replace, &mut desired.inject] {
        if let Some(rs) = ops.get_mut(&source) {
            let before = rs.len();
            rs.retain(|(p, _)| *p != position);
            removed += before - rs.len();
        }
    }
    if removed == 0 {
        return Err(Error::NotFound(format!(
            "task `{name}` has no binlog operation at {position} of source `{source}` (`dm ctl binlog list {name}`)"
        )));
    }
    desired.generation += 1;
    meta::put_json(m.store.as_ref(), &key, &desired).await?;
    task_view(m, task).await
}

/// `binlog list`: the skips and replacements recorded for a task.
pub async fn list(m: &Master, name: &str) -> Result<Vec<BinlogOperator>, Error> {
    load_task(m, name).await?;
    let d = meta::get_json::<DesiredStage>(m.store.as_ref(), &keys::stage(name))
        .await?
        .ok_or_else(|| Error::NotFound(format!("task `{name}` has no stage")))?;
    let mut out = vec![];
    for (source, ps) in d.skip {
        for p in ps {
            out.push(BinlogOperator {
                source: source.clone(),
                position: p,
                action: "skip".into(),
                sql: vec![],
            });
        }
    }
    for (action, ops) in [("replace", d.replace), ("inject", d.inject)] {
        for (source, rs) in ops {
            for (p, sql) in rs {
                out.push(BinlogOperator {
                    source: source.clone(),
                    position: p,
                    action: action.into(),
                    sql,
                });
            }
        }
    }
    Ok(out)
}

/// `binlog replace`: the transaction each paused subtask stopped at is replaced by `sql`
/// (run on the target and tracked like the source's own DDL), and the task resumes.
pub async fn replace(m: &Master, name: &str, body: &BinlogStatements) -> Result<TaskView, Error> {
    if body.sql.is_empty() {
        return Err(Error::Invalid(
            "binlog replace needs at least one statement".into(),
        ));
    }
    check_statements(&body.sql)?;
    let record = |d: &mut DesiredStage, source: String, p: String| {
        d.replace
            .entry(source)
            .or_default()
            .push((p, body.sql.clone()))
    };
    if body.at.position.is_some() {
        return at_position(m, name, &body.at, record).await;
    }
    at_paused_events(m, name, OnShardDdl::Replace(&body.sql), record).await
}

/// `binlog inject`: statements run on the target before the transaction each paused subtask
/// stopped at (or the one ending at `-b`), which is then applied as usual.
pub async fn inject(m: &Master, name: &str, body: &BinlogStatements) -> Result<TaskView, Error> {
    if body.sql.is_empty() {
        return Err(Error::Invalid(
            "binlog inject needs at least one statement".into(),
        ));
    }
    check_statements(&body.sql)?;
    let record = |d: &mut DesiredStage, source: String, p: String| {
        d.inject
            .entry(source)
            .or_default()
            .push((p, body.sql.clone()))
    };
    if body.at.position.is_some() {
        return at_position(m, name, &body.at, record).await;
    }
    at_paused_events(m, name, OnShardDdl::Refuse, record).await
}

/// Refuses, before anything is recorded, statements a binlog operator could not run.
fn check_statements(sql: &[String]) -> Result<(), Error> {
    for s in sql {
        crate::schema::check_operator_statement(s).map_err(Error::Invalid)?;
    }
    Ok(())
}

/// What a binlog operator does to a shard DDL in conflict (its lock takes it).
enum OnShardDdl<'a> {
    Skip,
    Replace(&'a [String]),
    Refuse,
}

/// Records `op` for the event each paused subtask of the task stopped at, then resumes it.
async fn at_paused_events(
    m: &Master,
    name: &str,
    on_shard_ddl: OnShardDdl<'_>,
    mut op: impl FnMut(&mut DesiredStage, String, String),
) -> Result<TaskView, Error> {
    let task = load_task(m, name).await?;
    let key = keys::stage(name);
    let mut desired = meta::get_json::<DesiredStage>(m.store.as_ref(), &key)
        .await?
        .ok_or_else(|| Error::NotFound(format!("task `{name}` has no stage")))?;
    let mut found = false;
    for inst in &task.mysql_instances {
        let status =
            meta::get_json::<SubtaskStatus>(m.store.as_ref(), &keys::status(name, &inst.source_id))
                .await?;
        let error = status
            .filter(|s| s.stage == Stage::Paused)
            .and_then(|s| s.last_error);
        let shard_ddl = error.as_ref().is_some_and(|e| e.code == "DM-SHARD-6101");
        let position = error.and_then(|e| e.position);
        if let Some(p) = position {
            // A shard DDL in conflict: the lock takes the skip or the replacement.
            if shard_ddl {
                let replace = match &on_shard_ddl {
                    OnShardDdl::Skip => None,
                    OnShardDdl::Replace(sql) => Some(*sql),
                    OnShardDdl::Refuse => return Err(Error::Invalid(format!(
                        "`{}` is paused at a shard DDL in conflict; use `dm ctl binlog replace` or `dm ctl shard-ddl-lock unlock`",
                        inst.source_id
                    ))),
                };
                if shard_locks::operate_paused_ddl(m, &task, &inst.source_id, &p, replace).await? {
                    found = true;
                    continue;
                }
            }
            tracing::warn!(task = %name, source = %inst.source_id, position = %p, "operator on a binlog event");
            op(&mut desired, inst.source_id.clone(), p);
            found = true;
        }
    }
    if !found {
        return Err(Error::Invalid(format!(
            "task `{name}` has no subtask paused at a binlog event; `dm ctl query-status {name}` shows why it stopped"
        )));
    }
    desired.stage = Stage::Running;
    desired.generation += 1;
    meta::put_json(m.store.as_ref(), &key, &desired).await?;
    task_view(m, task).await
}
