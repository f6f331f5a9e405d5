//! `resync`: copy tables of a running task again, while it runs (after `verify` found them
//! different, or after writes behind dm's back). Kept as an order with the task's desired
//! stage; the subtasks of the sources named restart and the tables join again
//! (`sync/join.rs`): re-created in the target, copied chunk by chunk, caught up, handed over.

use super::binlog_schema::table_name;
use super::tasks::{load_task, task_view, update_stage};
use super::Master;
use crate::api::types::{ResyncBody, TaskView};
use crate::error::Error;
use crate::rules::TaskRules;
use crate::status::Stage;
use crate::table::TableName;
use crate::worker::ResyncOrder;
use std::collections::BTreeSet;

/// Orders kept per task: a subtask takes every order newer than its checkpoint's, so only
/// one down for longer than this many orders could miss one (and would copy its tables at
/// the next order anyway).
const KEPT_ORDERS: usize = 64;

pub async fn resync(m: &Master, name: &str, body: &ResyncBody) -> Result<TaskView, Error> {
    let task = load_task(m, name).await?;
    if body.tables.is_empty() {
        return Err(Error::Invalid(format!(
            "resync of task `{name}` names no table: `dm ctl resync {name} shop.orders`"
        )));
    }
    let tables = body
        .tables
        .iter()
        .map(|t| table_name(t))
        .collect::<Result<BTreeSet<TableName>, Error>>()?;
    let sources: Vec<String> = match body.sources.is_empty() {
        true => task
            .mysql_instances
            .iter()
            .map(|i| i.source_id.clone())
            .collect(),
        false => body.sources.clone(),
    };
    // Per source, the tables the order names that its rules take.
    let mut per_source: Vec<(String, BTreeSet<TableName>)> = Vec::new();
    for source in &sources {
        if task.instance(source).is_none() {
            return Err(Error::NotFound(format!(
                "task `{name}` has no source `{source}`"
            )));
        }
        let filter = task.table_filter_of(source);
        let router = task.router_of(source);
        let mine: BTreeSet<TableName> = tables
            .iter()
            .filter(|t| filter.allows_table(&t.schema, &t.table))
            .cloned()
            .collect();
        if let Some(t) = mine.iter().find(|t| router.route(t).is_some()) {
            return Err(Error::Invalid(format!(
                "{t} of source `{source}` is routed to another table, which resync cannot re-create without the rows other tables put there; compare and repair it with `dm ctl verify {name} --fix`"
            )));
        }
        if !mine.is_empty() {
            per_source.push((source.clone(), mine));
        }
    }
    if let Some(t) = tables
        .iter()
        .find(|t| !per_source.iter().any(|(_, mine)| mine.contains(t)))
    {
        return Err(Error::Invalid(format!(
            "task `{name}` does not take {t} from {}: resync copies tables of the task",
            sources.join(", ")
        )));
    }
    update_stage(m, name, |desired| {
        let first = desired.resync.last().map_or(1, |o| o.id + 1);
        for (id, (source, mine)) in (first..).zip(&per_source) {
            desired.resync.push(ResyncOrder {
                id,
                source: source.clone(),
                tables: mine.clone(),
            });
            // Taken when the subtask starts: a running one restarts now, a paused one at
            // resume.
            if desired.stage_of(source) == Stage::Running {
                *desired
                    .source_generations
                    .entry(source.clone())
                    .or_default() += 1;
            }
        }
        let excess = desired.resync.len().saturating_sub(KEPT_ORDERS);
        desired.resync.drain(..excess);
        Ok(())
    })
    .await?;
    tracing::info!(task = %name, tables = ?body.tables, "resync ordered");
    task_view(m, task).await
}
