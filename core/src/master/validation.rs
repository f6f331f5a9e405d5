//! Continuous validation (`dm ctl validation start|stop|status`): the leading master (or the
//! standalone one) runs `verify` on a task again and again, every `interval` seconds after the
//! last run ended, and keeps the last result where `validation status` and `/metrics` read it.

use super::tasks::load_task;
use super::Master;
pub use crate::api::types::ValidationStatus;
use crate::config::{SourceConfig, TaskConfig};
use crate::error::Error;
use crate::meta::{self, keys, MetaStore};
use crate::status::now_secs;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_INTERVAL: u64 = 60;
/// Differences kept in the status.
const SHOWN: usize = 20;

/// What `validation start` asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationConfig {
    pub interval_secs: u64,
}

pub async fn start(
    m: &Master,
    name: &str,
    interval_secs: Option<u64>,
) -> Result<ValidationStatus, Error> {
    load_task(m, name).await?;
    let interval_secs = interval_secs.unwrap_or(DEFAULT_INTERVAL).max(1);
    let cfg = ValidationConfig { interval_secs };
    meta::put_json(m.store.as_ref(), &keys::validation(name), &cfg).await?;
    let mut st = status_of(m.store.as_ref(), name).await?;
    st.interval_secs = interval_secs;
    Ok(st)
}

pub async fn stop(m: &Master, name: &str) -> Result<ValidationStatus, Error> {
    load_task(m, name).await?;
    m.store.delete(&keys::validation(name)).await?;
    status_of(m.store.as_ref(), name).await
}

pub async fn status(m: &Master, name: &str) -> Result<ValidationStatus, Error> {
    load_task(m, name).await?;
    if meta::get_json::<ValidationConfig>(m.store.as_ref(), &keys::validation(name))
        .await?
        .is_none()
    {
        return Err(Error::NotFound(format!(
            "task `{name}` is not validated; `dm ctl validation start {name}` first"
        )));
    }
    status_of(m.store.as_ref(), name).await
}

async fn status_of(store: &dyn MetaStore, task: &str) -> Result<ValidationStatus, Error> {
    Ok(meta::get_json(store, &keys::validation_status(task))
        .await?
        .unwrap_or_else(|| ValidationStatus {
            task: task.to_string(),
            ..Default::default()
        }))
}

/// Runs every validation that is due, forever (only on the leader).
pub async fn run(store: Arc<dyn MetaStore>) {
    loop {
        if let Err(e) = run_due(store.as_ref()).await {
            tracing::warn!(error = %e, "validation: cannot read what to validate");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn run_due(store: &dyn MetaStore) -> Result<(), Error> {
    for (key, cfg) in meta::list_json::<ValidationConfig>(store, keys::VALIDATION).await? {
        let name = &key[keys::VALIDATION.len()..];
        let last = status_of(store, name).await?;
        if last
            .last_finished
            .is_some_and(|t| now_secs() < t + cfg.interval_secs)
        {
            continue;
        }
        let Some(task) = meta::get_json::<TaskConfig>(store, &keys::task(name)).await? else {
            store.delete(&key).await?;
            continue;
        };
        let mut sources = vec![];
        for inst in &task.mysql_instances {
            sources.extend(
                meta::get_json::<SourceConfig>(store, &keys::source(&inst.source_id)).await?,
            );
        }
        let mut st = ValidationStatus {
            task: name.to_string(),
            interval_secs: cfg.interval_secs,
            runs: last.runs + 1,
            ..Default::default()
        };
        match crate::verify::verify(&task, &sources, false).await {
            Ok(reports) => {
                let compared: Vec<_> = reports.iter().filter(|r| r.skipped.is_none()).collect();
                st.tables = compared.len();
                st.rows = compared.iter().map(|r| r.rows).sum();
                st.differences = compared.iter().map(|r| r.differences).sum();
                st.diffs = compared
                    .iter()
                    .flat_map(|r| r.diffs.iter().map(|d| (r.table.clone(), d.clone())))
                    .take(SHOWN)
                    .collect();
                st.equal = Some(st.differences == 0);
                if st.differences > 0 {
                    tracing::warn!(task = %name, differences = st.differences, "validation: the target differs from the source");
                }
            }
            Err(e) => st.error = Some(e.report()),
        }
        st.last_finished = Some(now_secs());
        meta::put_json(store, &keys::validation_status(name), &st).await?;
    }
    Ok(())
}
