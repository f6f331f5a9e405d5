//! `shard-ddl-lock`: what merged tables wait for, and resolving a stuck lock by hand; also
//! `binlog skip|replace` on a subtask paused at a shard DDL.

use super::Master;
use crate::api::types::{LockReport, UnlockBody, Unlocked};
use crate::config::TaskConfig;
use crate::error::Error;
use crate::hooks::ShardId;
use crate::meta::{self, keys};
use crate::schema::parse_ddl;
use crate::shard::coordinator::{execute, release_shard, task_locks};
use crate::shard::{self, LockState, ShardDdl};

async fn sharded_tasks(m: &Master, only: Option<&str>) -> Result<Vec<TaskConfig>, Error> {
    let tasks: Vec<TaskConfig> = meta::list_json::<TaskConfig>(m.store.as_ref(), keys::TASK)
        .await?
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| t.shard_mode.is_some() && only.is_none_or(|o| o == t.name))
        .collect();
    if let Some(name) = only {
        if tasks.is_empty() {
            return Err(Error::NotFound(format!(
                "task `{name}` does not exist or has no shard-mode"
            )));
        }
    }
    Ok(tasks)
}

pub async fn list(m: &Master, only: Option<&str>) -> Result<Vec<LockReport>, Error> {
    let mut out = vec![];
    for task in sharded_tasks(m, only).await? {
        let locks = task_locks(m.store.as_ref(), &task).await?;
        let states =
            meta::list_json::<LockState>(m.store.as_ref(), &shard::lock_prefix(&task.name)).await?;
        let released =
            meta::list_json::<ShardDdl>(m.store.as_ref(), &shard::done_prefix(&task.name)).await?;
        let mode = format!("{:?}", task.shard_mode.unwrap()).to_lowercase();
        for (target, shards) in &locks.shards {
            let arrived = locks.pending.get(target).cloned().unwrap_or_default();
            let catching_up: Vec<ShardId> = released
                .iter()
                .filter(|(_, d)| d.target == *target)
                .map(|(_, d)| d.shard.clone())
                .collect();
            let state = states
                .iter()
                .find(|(k, _)| *k == shard::lock(&task.name, target))
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            if arrived.is_empty()
                && catching_up.is_empty()
                && state.deferred.is_empty()
                && state.conflict.is_none()
            {
                continue;
            }
            let waiting_for = shards
                .iter()
                .filter(|s| !arrived.iter().any(|a| a.shard == **s))
                .cloned()
                .collect();
            out.push(LockReport {
                task: task.name.clone(),
                target: target.clone(),
                mode: mode.clone(),
                arrived,
                waiting_for,
                catching_up,
                executed: state.executed,
                deferred: state.deferred,
                conflict: state.conflict.map(|c| c.message),
            });
        }
    }
    Ok(out)
}

/// Resolves a lock by hand: releases every shard that sent a DDL, runs the DDL first
/// (`exec`) or not (`skip`), clears a conflict, and resumes the task's paused subtasks.
pub async fn unlock(m: &Master, b: &UnlockBody) -> Result<Unlocked, Error> {
    let task = sharded_tasks(m, Some(&b.task)).await?.remove(0);
    let store = m.store.as_ref();
    let locks = task_locks(store, &task).await?;
    let arrived = locks.pending.get(&b.target).cloned().unwrap_or_default();
    let key = shard::lock(&task.name, &b.target);
    let mut lock: LockState = meta::get_json(store, &key).await?.unwrap_or_default();
    if arrived.is_empty() && lock.conflict.is_none() {
        return Err(Error::NotFound(format!(
            "no shard of `{}` waits at a DDL; `dm ctl shard-ddl-lock {}` lists the locks",
            b.target, task.name
        )));
    }
    let count = |d: &Vec<String>| arrived.iter().filter(|a| a.ddls == *d).count();
    let mut distinct: Vec<Vec<String>> = vec![];
    for a in &arrived {
        if !distinct.contains(&a.ddls) {
            distinct.push(a.ddls.clone());
        }
    }
    let mut exec_error = None;
    match b.action.as_str() {
        "exec" => {
            // The owner's DDL and session, else the one most shards sent.
            let sent: Vec<ShardDdl> = match &b.owner {
                Some(o) => {
                    let mine: Vec<ShardDdl> = arrived
                        .iter()
                        .filter(|a| a.shard.source == *o)
                        .cloned()
                        .collect();
                    if mine.is_empty() {
                        return Err(Error::NotFound(format!(
                            "source `{o}` sent no DDL this lock holds; `dm ctl shard-ddl-lock {}` shows who did",
                            task.name
                        )));
                    }
                    mine
                }
                None => arrived.clone(),
            };
            let chosen = match &b.owner {
                Some(_) => sent.first().map(|d| d.ddls.clone()),
                None => distinct.iter().max_by_key(|d| count(d)).cloned(),
            };
            if let Some(ddls) = chosen {
                if let Some(why) = crate::shard::coordinator::lock_ddls(&b.target, &ddls) {
                    return Err(Error::Invalid(format!("unlock --exec would run {why}")));
                }
                let context = ShardDdl::context_of(&sent, &ddls);
                match execute(&task, &b.target, &ddls, context).await {
                    Ok(()) => lock.executed.push(ddls),
                    Err(e) if b.force_remove => {
                        tracing::warn!(task = %task.name, target = %b.target, error = %e, "unlock --force-remove: the DDL failed; lock released anyway");
                        exec_error = Some(e.to_string());
                        lock.executed.extend(distinct.iter().cloned());
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        // Done by hand: later shards sending the same DDL are let through.
        "skip" => lock.executed.extend(distinct),
        other => {
            return Err(Error::Invalid(format!(
                "unknown action `{other}`: use exec or skip"
            )))
        }
    }
    lock.conflict = None;
    meta::put_json(store, &key, &lock).await?;
    for d in &arrived {
        release_shard(store, &task.name, d).await?;
    }
    resume(m, &task.name).await?;
    Ok(Unlocked {
        task: task.name,
        target: b.target.clone(),
        action: b.action.clone(),
        released: arrived.iter().map(|a| a.shard.to_string()).collect(),
        exec_error,
    })
}

/// Restarts the subtasks a conflict paused.
async fn resume(m: &Master, task: &str) -> Result<(), Error> {
    let key = keys::stage(task);
    meta::update_json(
        m.store.as_ref(),
        &key,
        |d: &mut crate::worker::DesiredStage| {
            d.stage = crate::status::Stage::Running;
            d.generation += 1;
            Ok(())
        },
    )
    .await?;
    Ok(())
}

/// `binlog skip|replace` on a subtask paused at a shard DDL (its error position is the DDL's):
/// `replace` sends `sql` (written for the shard, renamed here) instead of the shard's DDL;
/// `skip` releases the shard without running its DDL. Returns false when no shard DDL of
/// `source` is at `position`.
pub async fn operate_paused_ddl(
    m: &Master,
    task: &TaskConfig,
    source: &str,
    position: &str,
    replace: Option<&[String]>,
) -> Result<bool, Error> {
    let store = m.store.as_ref();
    let found = meta::list_json::<ShardDdl>(store, &shard::ddl_prefix(&task.name))
        .await?
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| d.shard.source == source && d.position.binlog.to_string() == position);
    let Some(mut d) = found else {
        return Ok(false);
    };
    let lock_key = shard::lock(&task.name, &d.target);
    let mut lock: LockState = meta::get_json(store, &lock_key).await?.unwrap_or_default();
    match replace {
        Some(sql) => {
            let (schema, table) = d.target.split_once('.').unwrap_or(("", &d.target));
            let target = crate::table::TableName::new(schema, table);
            let shard_db = d.shard.table.split_once('.').map(|(s, _)| s).unwrap_or("");
            d.ddls = sql
                .iter()
                .map(|s| match parse_ddl(shard_db, s) {
                    Ok(Some(ddl)) => ddl.renamed_to(&target).unwrap_or_else(|| s.clone()),
                    _ => s.clone(),
                })
                .collect();
            meta::put_json(store, &shard::ddl(&task.name, &d.target, &d.shard), &d).await?;
            tracing::warn!(task = %task.name, shard = %d.shard, ddls = ?d.ddls, "shard DDL replaced (binlog replace)");
        }
        None => {
            release_shard(store, &task.name, &d).await?;
            tracing::warn!(task = %task.name, shard = %d.shard, "shard DDL skipped (binlog skip)");
        }
    }
    lock.conflict = None;
    meta::put_json(store, &lock_key, &lock).await?;
    Ok(true)
}
