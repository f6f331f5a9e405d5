//! `start-task --start-time`: each source's replication starts at the first transaction the
//! source wrote at or after a time, whatever the task's checkpoint says. The master writes
//! that checkpoint before the task starts; changes up to the source's position now (and up to
//! the old checkpoint's safe-mode exit) are applied in safe mode, since the target may hold
//! them already.

use crate::checkpoint::{Checkpoint, MetaTables};
use crate::config::{SourceConfig, TaskConfig, TaskMode};
use crate::error::{DbRole, Error, Result};
use crate::rules::TaskRules;
use crate::upstream::time_search::{position_at, unix_time};
use crate::upstream::{current_position, source_flavor};
use mysql_async::prelude::Queryable;

/// Writes the start checkpoint of every source of `task`; one line per source for the answer.
pub async fn set(task: &TaskConfig, sources: &[SourceConfig], text: &str) -> Result<Vec<String>> {
    if task.task_mode == TaskMode::Full {
        return Err(Error::Invalid(
            "start-time: task-mode full replicates no binlog; use incremental or all".into(),
        ));
    }
    let tgt_addr = task.target_database.addr();
    let mut tgt = crate::db::connect(&task.target_database, DbRole::Target).await?;
    let tables = MetaTables::new(&task.meta_schema, &task.name);
    tables.create(&mut tgt, &tgt_addr).await?;
    let mut notes = vec![];
    for src in sources {
        let addr = src.from.addr();
        let mut conn = crate::db::connect(&src.from, DbRole::Source).await?;
        let flavor = source_flavor(src, &mut conn).await?;
        let at = unix_time(&mut conn, &addr, text).await?;
        let now_ts: Option<u32> = conn
            .query_first("SELECT UNIX_TIMESTAMP()")
            .await
            .map_err(|e| Error::db(DbRole::Source, &addr, e))?;
        if now_ts.is_some_and(|now| at > now) {
            return Err(Error::Invalid(format!(
                "start-time `{text}` is in the future for source {}",
                src.source_id
            )));
        }
        let filter = task.table_filter_of(&src.source_id);
        let position = position_at(&mut conn, src, flavor, at, &filter).await?;
        let now = current_position(&mut conn, flavor, &addr).await?;
        let old = tables
            .load_checkpoint(&mut tgt, &tgt_addr, &src.source_id)
            .await?;
        let cp = Checkpoint {
            safe_mode_exit: Some(now.binlog).max(old.and_then(|o| o.safe_mode_exit)),
            ..Checkpoint::at(
                position,
                crate::schema::tracker_now(&mut conn, &filter, &addr).await?,
            )
        };
        tables
            .save_checkpoint(&mut tgt, &tgt_addr, &src.source_id, &cp)
            .await?;
        tracing::info!(task = %task.name, source = %src.source_id, start_time = text, position = %cp.position, "start-time: replication starts here");
        notes.push(format!(
            "start-time {text}: source {} replicates from {} (safe mode until {})",
            src.source_id,
            cp.position.binlog,
            cp.safe_mode_exit
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_default()
        ));
    }
    Ok(notes)
}
