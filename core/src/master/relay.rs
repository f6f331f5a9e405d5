//! `start-relay`, `stop-relay`, `pause-relay`, `resume-relay` and `purge-relay`: the master
//! records what a user wants in the metadata store; the worker of the source carries it out
//! and reports in `/dm/relay-status/<source>`.

use super::Master;
use crate::api::types::RelayAnswer;
use crate::config::SourceConfig;
use crate::error::Error;
use crate::meta::{self, keys};
use crate::upstream::relay::{PurgeReport, PurgeRequest, RelayStage, RelayStatus};
use std::time::Duration;

const PURGE_WAIT: Duration = Duration::from_secs(15);

pub async fn operate(
    m: &Master,
    source: &str,
    op: &str,
    filename: Option<String>,
) -> Result<RelayAnswer, Error> {
    let store = m.store.as_ref();
    let key = keys::source(source);
    let mut cfg = meta::get_json::<SourceConfig>(store, &key)
        .await?
        .ok_or_else(|| Error::NotFound(format!("source `{source}` does not exist")))?;
    let not_enabled = || {
        Error::Invalid(format!(
            "source `{source}` keeps no relay log; `dm ctl start-relay {source}` first"
        ))
    };
    let mut purge = None;
    match op {
        "start" | "stop" => {
            cfg.enable_relay = op == "start";
            meta::put_json(store, &key, &cfg).await?;
            if !cfg.enable_relay {
                store.delete(&keys::relay_stage(source)).await?;
            }
        }
        "pause" | "resume" => {
            if !cfg.enable_relay {
                return Err(not_enabled());
            }
            let stage = if op == "pause" {
                RelayStage::Paused
            } else {
                RelayStage::Running
            };
            meta::put_json(store, &keys::relay_stage(source), &stage).await?;
        }
        "purge" => {
            if !cfg.enable_relay {
                return Err(not_enabled());
            }
            purge = Some(request_purge(m, source, filename).await?);
        }
        _ => {
            return Err(Error::NotFound(format!(
                "no relay operation `{op}`: start, stop, pause, resume or purge"
            )))
        }
    }
    let stage = meta::get_json::<RelayStage>(store, &keys::relay_stage(source)).await?;
    Ok(RelayAnswer {
        source_id: source.to_string(),
        enable_relay: cfg.enable_relay,
        stage: stage.or(cfg.enable_relay.then_some(RelayStage::Running)),
        purge,
    })
}

/// Stores a purge request and waits for the worker's answer.
async fn request_purge(
    m: &Master,
    source: &str,
    filename: Option<String>,
) -> Result<PurgeReport, Error> {
    let store = m.store.as_ref();
    let last = meta::get_json::<PurgeRequest>(store, &keys::relay_purge(source)).await?;
    let id = last.map_or(0, |r| r.id) + 1;
    meta::put_json(
        store,
        &keys::relay_purge(source),
        &PurgeRequest { id, filename },
    )
    .await?;
    let deadline = tokio::time::Instant::now() + PURGE_WAIT;
    loop {
        let status = meta::get_json::<RelayStatus>(store, &keys::relay_status(source)).await?;
        if let Some(report) = status.and_then(|s| s.last_purge).filter(|p| p.id >= id) {
            return Ok(report);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Invalid(format!(
                "the worker of source `{source}` did not carry out the purge within {}s; is it running (`dm ctl operate-source show`)?",
                PURGE_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
