//! `binlog-schema list|update|delete`: the schema dm tracks for a source's tables (kept with the
//! checkpoint in the target), to inspect it or to fix it when it drifted from the binlog. Changes
//! need the task paused: a running subtask writes its own tracked schema back.

use super::tasks::load_task;
use super::Master;
use crate::api::types::SchemaChange;
use crate::checkpoint::MetaTables;
use crate::config::TaskConfig;
use crate::error::{DbRole, Error};
use crate::meta::{self, keys};
use crate::rules::TaskRules;
use crate::schema::{parse_ddl, Tracker};
use crate::status::{Stage, SubtaskStatus};
use crate::table::{Table, TableName};
use mysql_async::prelude::Queryable;

/// `schema.table` (each part may be quoted with backticks).
pub(super) fn table_name(text: &str) -> Result<TableName, Error> {
    let (s, t) = text
        .split_once('.')
        .ok_or_else(|| Error::Invalid(format!("`{text}`: give the table as schema.table")))?;
    Ok(TableName::new(s.trim_matches('`'), t.trim_matches('`')))
}

/// The checkpoint of (task, source) and where it lives.
async fn checkpoint(
    task: &TaskConfig,
    source: &str,
) -> Result<(crate::checkpoint::Checkpoint, MetaTables, mysql_async::Conn), Error> {
    let meta = MetaTables::new(&task.meta_schema, &task.name);
    let addr = task.target_database.addr();
    let mut conn = crate::db::connect(&task.target_database, DbRole::Target).await?;
    let cp = meta
        .load_checkpoint(&mut conn, &addr, source)
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "task `{}` has no checkpoint for source `{source}` yet (it is in its full phase or never ran)",
                task.name
            ))
        })?;
    Ok((cp, meta, conn))
}

/// The tables tracked for `source` (may be left out when the task has one).
pub async fn list(m: &Master, name: &str, source: Option<&str>) -> Result<Vec<Table>, Error> {
    let task = load_task(m, name).await?;
    let source = task.source_named(source)?;
    let (cp, _, _) = checkpoint(&task, &source).await?;
    Ok(cp.tracker.tables().cloned().collect())
}

/// The definition of the source's table `name` as the source or the target has it now.
async fn live_definition(
    m: &Master,
    task: &TaskConfig,
    source: &str,
    name: &TableName,
    from: &str,
) -> Result<Table, Error> {
    let (db, on) = match from {
        "source" => {
            let src = meta::get_json::<crate::config::SourceConfig>(
                m.store.as_ref(),
                &keys::source(source),
            )
            .await?
            .ok_or_else(|| Error::NotFound(format!("source `{source}` does not exist")))?;
            (src.from, name.clone())
        }
        "target" => {
            let routed = task
                .router_of(source)
                .route(name)
                .map(|r| r.target)
                .unwrap_or_else(|| name.clone());
            (task.target_database.clone(), routed)
        }
        other => {
            return Err(Error::Invalid(format!(
                "from `{other}`: take the definition from `source` or `target`"
            )))
        }
    };
    let role = if from == "source" {
        DbRole::Source
    } else {
        DbRole::Target
    };
    let mut conn = crate::db::connect(&db, role).await?;
    let mut table = crate::schema::load_table(&mut conn, &on)
        .await
        .map_err(|e| Error::db(role, &db.addr(), e))?
        .ok_or_else(|| Error::NotFound(format!("{from} has no table {on}")))?;
    table.name = name.clone();
    Ok(table)
}

/// `update` (a CREATE TABLE) or `delete` (no statement) one table's tracked schema.
pub async fn change(m: &Master, name: &str, c: &SchemaChange) -> Result<Vec<Table>, Error> {
    let task = load_task(m, name).await?;
    let source = task.source_named(c.source.as_deref())?;
    let status =
        meta::get_json::<SubtaskStatus>(m.store.as_ref(), &keys::status(name, &source)).await?;
    if status.is_some_and(|s| s.stage == Stage::Running) {
        return Err(Error::Invalid(format!(
            "pause task `{name}` first (`dm ctl pause-task {name}`): its subtask writes its own tracked schema"
        )));
    }
    let target = table_name(&c.table)?;
    let (mut cp, meta, mut conn) = checkpoint(&task, &source).await?;
    match &c.create {
        None if c.from.is_some() => {
            let from = c.from.as_deref().unwrap_or_default();
            let table = live_definition(m, &task, &source, &target, from).await?;
            cp.tracker.remove(&target);
            cp.tracker.insert(table);
        }
        None => {
            cp.tracker.remove(&target).ok_or_else(|| {
                Error::NotFound(format!(
                    "`{}` is not tracked for source `{source}`",
                    c.table
                ))
            })?;
        }
        Some(sql) => {
            let ddl = parse_ddl(&target.schema, sql)
                .map_err(|e| Error::Invalid(format!("cannot read the statement: {e}")))?
                .ok_or_else(|| Error::Invalid("give a CREATE TABLE statement".into()))?;
            let mut scratch = Tracker::default();
            ddl.apply(&mut scratch)
                .map_err(|e| Error::Invalid(format!("cannot apply the statement: {e}")))?;
            let mut table = scratch
                .tables()
                .next()
                .cloned()
                .ok_or_else(|| Error::Invalid("give a CREATE TABLE statement".into()))?;
            table.name = target.clone();
            cp.tracker.remove(&target);
            cp.tracker.insert(table);
        }
    }
    conn.query_drop(meta.save_checkpoint_sql(&source, &cp, true))
        .await
        .map_err(|e| Error::db(DbRole::Target, &task.target_database.addr(), e))?;
    tracing::warn!(task = %name, source = %source, table = %c.table, "tracked schema changed by hand");
    Ok(cp.tracker.tables().cloned().collect())
}
