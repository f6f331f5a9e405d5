//! The coordinator: on the leading master (or in standalone), turns the shards' DDLs into
//! decisions of the task's policy, runs what is to run on the target, and releases shards.
//! Its whole state is in the MetaStore, so a new leader picks up where the old one stopped;
//! running a DDL twice is harmless (an "already done" answer counts as done).

use super::{policy, Conflict, LockState, Members, ShardDdl};
use crate::config::TaskConfig;
use crate::error::{DbRole, Error, Result};
use crate::hooks::{Decision, LockView, PendingDdl, ShardId};
use crate::meta::{self, keys, MetaStore};
use crate::upstream::{Baseline, StatementContext};
use mysql_async::prelude::Queryable;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Runs until aborted.
pub async fn run(store: Arc<dyn MetaStore>, host: crate::hooks::Host) {
    // Policy plugins, loaded once per task.
    let mut policies = Policies::new();
    let mut changes = store.watch(super::PREFIX).await.ok();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        crate::meta::next_change(&mut changes, &mut tick).await;
        if let Err(e) = coordinate_once(store.as_ref(), &mut policies, &host).await {
            tracing::warn!(error = %e, "shard DDL coordination failed; trying again");
        }
    }
}

/// The task's policy: its `shard-ddl-policy` plugin, else `shard-mode`'s native one.
async fn policy_of(
    task: &TaskConfig,
    mode: crate::config::ShardMode,
    store: &dyn MetaStore,
    host: &crate::hooks::Host,
) -> std::result::Result<Arc<dyn crate::hooks::ShardDdlPolicy>, String> {
    let Some(name) = &task.shard_ddl_policy else {
        return Ok(Arc::from(policy::native(mode)));
    };
    let spec = task.plugins.get(name).ok_or("not in plugins")?;
    let host = host.as_ref().ok_or("this process cannot run plugins")?;
    let bytes = crate::meta::plugins::bytes_of(store, name, spec)
        .await
        .map_err(|e| e.to_string())?;
    crate::meta::plugins::load_off_runtime(host, name, spec, bytes)
        .await
        .map_err(|e| e.to_string())?
        .shard_ddl_policy
        .ok_or_else(|| format!("plugin `{name}` has no shard DDL policy hook"))
}

/// A task's shards per target table and their DDLs waiting for a decision.
pub struct TaskLocks {
    /// Every source registered its shards.
    pub complete: bool,
    pub shards: BTreeMap<String, Vec<ShardId>>,
    pub pending: BTreeMap<String, Vec<ShardDdl>>,
}

pub async fn task_locks(store: &dyn MetaStore, task: &TaskConfig) -> Result<TaskLocks> {
    let members = meta::list_json::<Members>(store, &super::member_prefix(&task.name)).await?;
    let mut shards: BTreeMap<String, Vec<ShardId>> = BTreeMap::new();
    for (key, m) in &members {
        let source = key.rsplit('/').next().unwrap_or_default();
        for (target, tables) in m {
            shards
                .entry(target.clone())
                .or_default()
                .extend(tables.iter().map(|t| ShardId {
                    source: source.to_string(),
                    table: t.clone(),
                }));
        }
    }
    let mut pending: BTreeMap<String, Vec<ShardDdl>> = BTreeMap::new();
    for (_, d) in meta::list_json::<ShardDdl>(store, &super::ddl_prefix(&task.name)).await? {
        pending.entry(d.target.clone()).or_default().push(d);
    }
    for p in pending.values_mut() {
        p.sort_by_key(|d| d.seq);
    }
    Ok(TaskLocks {
        complete: members.len() >= task.mysql_instances.len(),
        shards,
        pending,
    })
}

type Policies = std::collections::HashMap<String, Arc<dyn crate::hooks::ShardDdlPolicy>>;

pub async fn coordinate_once(
    store: &dyn MetaStore,
    policies: &mut Policies,
    host: &crate::hooks::Host,
) -> Result<()> {
    for (_, task) in meta::list_json::<TaskConfig>(store, keys::TASK).await? {
        let Some(mode) = task.shard_mode else {
            continue;
        };
        // A task started again under the same name may have another mode or plugin.
        let key = format!(
            "{}/{mode:?}/{:?}",
            task.name,
            task.shard_ddl_policy.as_ref().map(|p| task.plugins.get(p))
        );
        let policy = match policies.get(&key) {
            Some(p) => p.clone(),
            None => match policy_of(&task, mode, store, host).await {
                Ok(p) => {
                    policies.insert(key, p.clone());
                    p
                }
                Err(message) => {
                    tracing::warn!(task = %task.name, %message, "shard DDL policy plugin not loaded");
                    continue;
                }
            },
        };
        // Lock states are read before the DDLs, and a conflict is written only if the lock
        // is unchanged since: a `binlog replace/skip` or `unlock` changes a DDL, then clears
        // the lock's conflict, so a pass that read the DDL before that change cannot put a
        // stale conflict over the user's decision (the lock would stay in conflict).
        let locks_read: BTreeMap<String, Vec<u8>> = store
            .list(&super::lock_prefix(&task.name))
            .await?
            .into_iter()
            .collect();
        let locks = task_locks(store, &task).await?;
        if !locks.complete {
            // A source has not said which shards it has yet.
            continue;
        }
        let targets: BTreeSet<&String> = locks.shards.keys().chain(locks.pending.keys()).collect();
        for target in targets {
            let shards = locks.shards.get(target).cloned().unwrap_or_default();
            let mut pending = locks.pending.get(target).cloned().unwrap_or_default();
            let key = super::lock(&task.name, target);
            let mut read = locks_read.get(&key).cloned();
            let mut lock: LockState = match &read {
                Some(b) => serde_json::from_slice(b)
                    .map_err(|e| crate::Error::Meta(format!("{key}: {e}")))?,
                None => LockState::default(),
            };
            let mut columns = if pending.is_empty() {
                vec![]
            } else {
                target_columns(&task, target).await?
            };
            // Each round releases or executes something, or stops.
            for _ in 0..(pending.len() + lock.deferred.len() + 1) {
                if lock.conflict.is_some() {
                    break;
                }
                let view_pending: Vec<PendingDdl> = pending
                    .iter()
                    .map(|d| PendingDdl {
                        shard: d.shard.clone(),
                        ddls: d.ddls.clone(),
                        position: d.position.binlog.to_string(),
                    })
                    .collect();
                let decision = policy.decide(&LockView {
                    task: &task.name,
                    target,
                    shards: &shards,
                    pending: &view_pending,
                    executed: &lock.executed,
                    deferred: &lock.deferred,
                    target_columns: &columns,
                });
                // What a policy asks to run is checked first: a refused statement is a
                // conflict like any other.
                let decision = match decision {
                    Decision::Exec { ddls, release } => match lock_ddls(target, &ddls) {
                        Some(why) => Decision::Conflict {
                            shards: release,
                            message: format!("the policy `{}` asked to run {why}", policy.name()),
                        },
                        None => Decision::Exec { ddls, release },
                    },
                    other => other,
                };
                let release = match decision {
                    Decision::Wait => break,
                    Decision::Exec { ddls, release } => {
                        let context = ShardDdl::context_of(&pending, &ddls);
                        if let Err(e) = execute(&task, target, &ddls, context).await {
                            if e.is_retryable() {
                                return Err(e);
                            }
                            lock.conflict = Some(Conflict {
                                shards: release,
                                message: format!("the target refused `{}`: {e}", ddls.join("; ")),
                            });
                            write_lock(store, &key, &mut read, &lock, true).await?;
                            break;
                        }
                        lock.deferred.retain(|(d, _)| *d != ddls);
                        lock.executed.push(ddls);
                        columns = target_columns(&task, target).await?;
                        release
                    }
                    Decision::Skip { release } => release,
                    Decision::Defer { ddls, release } => {
                        match lock.deferred.iter_mut().find(|(d, _)| *d == ddls) {
                            Some((_, sent)) => sent.extend(release.iter().cloned()),
                            None => lock.deferred.push((ddls, release.clone())),
                        }
                        release
                    }
                    Decision::Conflict { shards, message } => {
                        tracing::warn!(task = %task.name, target = %target, %message, "shard DDL conflict");
                        lock.conflict = Some(Conflict { shards, message });
                        vec![]
                    }
                };
                if !write_lock(store, &key, &mut read, &lock, lock.conflict.is_some()).await? {
                    // Changed by a user meanwhile: decided again at the next pass.
                    break;
                }
                for shard in &release {
                    if let Some(i) = pending.iter().position(|d| d.shard == *shard) {
                        let d = pending.remove(i);
                        release_shard(store, &task.name, &d).await?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Writes a lock state; with `only_if_unchanged`, only if the store still holds `read` (what
/// this pass read or last wrote): false when someone else changed it.
async fn write_lock(
    store: &dyn MetaStore,
    key: &str,
    read: &mut Option<Vec<u8>>,
    lock: &LockState,
    only_if_unchanged: bool,
) -> Result<bool> {
    let bytes = serde_json::to_vec(lock).map_err(|e| crate::Error::Meta(format!("{key}: {e}")))?;
    if !only_if_unchanged {
        store.put(key, bytes.clone()).await?;
    } else if !store
        .compare_and_put(key, read.as_deref(), bytes.clone())
        .await?
    {
        tracing::debug!(key, "shard DDL lock changed meanwhile; deciding again");
        return Ok(false);
    }
    *read = Some(bytes);
    Ok(true)
}

/// The merged table's (column, type) in the target, lower case.
async fn target_columns(task: &TaskConfig, target: &str) -> Result<Vec<(String, String)>> {
    let (schema, table) = target.split_once('.').unwrap_or(("", target));
    let mut conn = crate::db::connect(&task.target_database, DbRole::Target).await?;
    conn.exec(
        "SELECT column_name, LOWER(column_type) FROM information_schema.columns \
         WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        (schema, table),
    )
    .await
    .map_err(|e| Error::db(DbRole::Target, &task.target_database.addr(), e))
}

/// Lets a shard go on: its `done` key carries the DDL it sent. The `ddl` key goes only if it
/// still holds that DDL: once released, the shard may send its next DDL at once.
pub async fn release_shard(store: &dyn MetaStore, task: &str, d: &ShardDdl) -> Result<()> {
    meta::put_json(store, &super::done(task, &d.target, &d.shard), d).await?;
    let sent = serde_json::to_vec(d).map_err(|e| crate::Error::Meta(e.to_string()))?;
    store
        .compare_and_delete(&super::ddl(task, &d.target, &d.shard), &sent)
        .await?;
    tracing::info!(task, target = %d.target, shard = %d.shard, "shard released");
    Ok(())
}

/// Errors that mean the statement's change is already in the target.
const ALREADY_DONE: [u16; 4] = [
    1050, // table exists
    1060, // duplicate column
    1061, // duplicate key name
    1091, // can't drop: does not exist
];

/// What is wrong with statements a policy wants run on the merged table `target`
/// (`schema.table`): each must be one ALTER TABLE (or CREATE/DROP INDEX) of that table.
/// `None` when they are fine. A policy plugin's answer is checked like the native ones'.
pub fn lock_ddls(target: &str, ddls: &[String]) -> Option<String> {
    use crate::schema::{parse_ddl, DdlKind};
    let (schema, table) = target.split_once('.').unwrap_or(("", target));
    let lock_table = crate::table::TableName::new(schema, table);
    for sql in ddls {
        let ok = match parse_ddl(schema, sql) {
            Ok(Some(d)) => {
                matches!(
                    d.kind,
                    DdlKind::AlterTable | DdlKind::CreateIndex | DdlKind::DropIndex
                ) && d.tables == [lock_table.clone()]
            }
            _ => false,
        };
        if !ok {
            return Some(format!(
                "`{}`, which is not one ALTER TABLE of {target}",
                crate::error::shorten(sql, 200)
            ));
        }
    }
    None
}

/// Runs the DDLs once on the target, in the session the shard's statement ran in.
pub async fn execute(
    task: &TaskConfig,
    target: &str,
    ddls: &[String],
    context: Option<&StatementContext>,
) -> Result<()> {
    let addr = task.target_database.addr();
    let mut conn = crate::db::connect(&task.target_database, DbRole::Target).await?;
    if let Some(ctx) = context {
        let te = |e| Error::db(DbRole::Target, &addr, e);
        let baseline = Baseline::read(&mut conn).await.map_err(te)?;
        let set = ctx.set_statement(&baseline);
        conn.query_drop(set).await.map_err(te)?;
    }
    for sql in ddls {
        match conn.query_drop(sql.as_str()).await {
            Ok(()) => {
                tracing::info!(task = %task.name, target, statement = %sql, "shard DDL run on the target")
            }
            Err(mysql_async::Error::Server(e)) if ALREADY_DONE.contains(&e.code) => {
                tracing::info!(task = %task.name, target, statement = %sql, "shard DDL already done on the target")
            }
            Err(e) => return Err(Error::db(DbRole::Target, &addr, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// A policy (a plugin's, say) cannot have the coordinator run anything but ALTERs of the
    /// lock's table.
    #[test]
    fn only_alters_of_the_locks_table_run() {
        let ok = |d: &str| super::lock_ddls("m.o", &[d.to_string()]).is_none();
        assert!(ok("ALTER TABLE `m`.`o` ADD COLUMN c INT"));
        assert!(ok("CREATE INDEX i ON m.o (c)"));
        assert!(!ok("ALTER TABLE m.other ADD COLUMN c INT"));
        assert!(!ok("DROP TABLE m.o"));
        assert!(!ok("ALTER TABLE m.o ADD COLUMN c INT; DROP DATABASE m"));
        assert!(!ok("DELETE FROM m.o"));
        assert!(!ok("GRANT ALL ON *.* TO x"));
    }
}
