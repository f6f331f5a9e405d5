//! `binlog skip|replace|inject|list|revert`: what a user decides about a source transaction
//! a task stopped at (or will reach), recorded with the task's desired stage per source and
//! position; the subtasks restart and act on it when they get there.

use super::tasks::{load_stage, load_task, task_view, update_stage};
use super::{shard_locks, Master};
use crate::api::types::{BinlogAt, BinlogOperator, BinlogStatements, TaskView};
use crate::error::Error;
use crate::meta::{self, keys};
use crate::position::BinlogPos;
use crate::status::{Stage, SubtaskStatus};
use crate::sync::{record_operator, BinlogAction};

/// `binlog skip`: the transaction each paused subtask of the task stopped at is skipped, and
/// the task resumes.
pub async fn skip(m: &Master, name: &str, at: &BinlogAt) -> Result<TaskView, Error> {
    if at.position.is_some() {
        return at_position(m, name, at, BinlogAction::Skip).await;
    }
    at_paused_events(m, name, OnShardDdl::Skip, BinlogAction::Skip).await
}

/// The end of a transaction as a user (or an error report) wrote it.
fn parse_position(position: &str) -> Result<BinlogPos, Error> {
    BinlogPos::parse(position).ok_or_else(|| {
        Error::Invalid(format!(
            "`{position}` is not a binlog position: give the end of the transaction as file:pos (`dm ctl query-status` and the error show them)"
        ))
    })
}

/// Records `action` for the transaction ending at `at.position` of `at.source`; the task's
/// subtasks restart and act on it when they reach it.
async fn at_position(
    m: &Master,
    name: &str,
    at: &BinlogAt,
    action: BinlogAction,
) -> Result<TaskView, Error> {
    let task = load_task(m, name).await?;
    let position = parse_position(at.position.as_deref().unwrap_or_default())?;
    let source = task.source_named(at.source.as_deref())?;
    update_stage(m, name, |desired| {
        record_operator(
            desired.operators.entry(source.clone()).or_default(),
            position.clone(),
            action.clone(),
        );
        desired.generation += 1;
        Ok(())
    })
    .await?;
    task_view(m, task).await
}

/// `binlog revert -b file:pos`: forgets the skip, replacement or injection recorded for
/// that position (TiDB DM's command); the subtasks restart without it.
pub async fn revert(m: &Master, name: &str, at: &BinlogAt) -> Result<TaskView, Error> {
    let task = load_task(m, name).await?;
    let position = at.position.as_deref().ok_or_else(|| {
        Error::Invalid("binlog revert needs the position (-b file:pos) of the operation".into())
    })?;
    let position = parse_position(position)?;
    let source = task.source_named(at.source.as_deref())?;
    update_stage(m, name, |desired| {
        let ops = desired.operators.entry(source.clone()).or_default();
        let before = ops.len();
        ops.retain(|o| o.at != position);
        if ops.len() == before {
            return Err(Error::NotFound(format!(
                "task `{name}` has no binlog operation at {position} of source `{source}` (`dm ctl binlog list {name}`)"
            )));
        }
        desired.generation += 1;
        Ok(())
    })
    .await?;
    task_view(m, task).await
}

/// `binlog list`: the skips and replacements recorded for a task.
pub async fn list(m: &Master, name: &str) -> Result<Vec<BinlogOperator>, Error> {
    load_task(m, name).await?;
    let d = load_stage(m, name).await?;
    let mut out = vec![];
    for (source, ops) in d.operators {
        for o in ops {
            out.push(BinlogOperator {
                source: source.clone(),
                position: o.at.to_string(),
                action: o.action.name().into(),
                sql: o.action.statements().to_vec(),
            });
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
    let action = BinlogAction::Replace {
        sql: body.sql.clone(),
    };
    if body.at.position.is_some() {
        return at_position(m, name, &body.at, action).await;
    }
    at_paused_events(m, name, OnShardDdl::Replace(&body.sql), action).await
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
    let action = BinlogAction::Inject {
        sql: body.sql.clone(),
    };
    if body.at.position.is_some() {
        return at_position(m, name, &body.at, action).await;
    }
    at_paused_events(m, name, OnShardDdl::Refuse, action).await
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

/// Records `action` for the event each paused subtask of the task stopped at, then resumes
/// it.
async fn at_paused_events(
    m: &Master,
    name: &str,
    on_shard_ddl: OnShardDdl<'_>,
    action: BinlogAction,
) -> Result<TaskView, Error> {
    let task = load_task(m, name).await?;
    // (source, transaction) of the subtasks paused at a binlog event, not at a shard lock.
    let mut paused_at: Vec<(String, BinlogPos)> = Vec::new();
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
            let at = BinlogPos::parse(&p).ok_or_else(|| {
                Error::Invalid(format!(
                    "`{}` stopped at {p}, not at a binlog transaction, which is what `dm ctl binlog` acts on: fix the cause the error names, then `dm ctl resume-task {name}`",
                    inst.source_id
                ))
            })?;
            paused_at.push((inst.source_id.clone(), at));
            found = true;
        }
    }
    if !found {
        return Err(Error::Invalid(format!(
            "task `{name}` has no subtask paused at a binlog event; `dm ctl query-status {name}` shows why it stopped"
        )));
    }
    update_stage(m, name, |desired| {
        for (source, at) in &paused_at {
            let ops = desired.operators.entry(source.clone()).or_default();
            record_operator(ops, at.clone(), action.clone());
        }
        desired.stage = Stage::Running;
        desired.generation += 1;
        Ok(())
    })
    .await?;
    task_view(m, task).await
}
