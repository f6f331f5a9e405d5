//! Sources: create (after probing the server), replace while no task uses one, list with
//! their worker and relay, stop.

use super::Master;
use crate::api::types::{FileBody, SourceView, Stopped};
use crate::check::probe_source;
use crate::config::{SourceConfig, TaskConfig};
use crate::error::Error;
use crate::meta::{self, keys};

/// What `operate-source show` lists of `s`.
async fn view_of(m: &Master, s: SourceConfig) -> Result<SourceView, Error> {
    let worker = m
        .store
        .get(&keys::bound(&s.source_id))
        .await?
        .map(|w| String::from_utf8_lossy(&w).into_owned());
    let relay = if s.enable_relay {
        meta::get_json(m.store.as_ref(), &keys::relay_status(&s.source_id)).await?
    } else {
        None
    };
    Ok(SourceView {
        address: s.from.addr(),
        user: s.from.user.clone(),
        enable_gtid: s.enable_gtid,
        enable_relay: s.enable_relay,
        source_id: s.source_id,
        worker,
        relay,
        warnings: vec![],
    })
}

pub async fn list(m: &Master) -> Result<Vec<SourceView>, Error> {
    let mut out = vec![];
    for (_, s) in meta::list_json::<SourceConfig>(m.store.as_ref(), keys::SOURCE).await? {
        out.push(view_of(m, s).await?);
    }
    Ok(out)
}

pub async fn create(m: &Master, body: FileBody) -> Result<SourceView, Error> {
    let mut src = SourceConfig::parse(&body.file, &body.content)?;
    probe_source(&src).await?;
    src.from.seal_password()?;
    let key = keys::source(&src.source_id);
    let value = serde_json::to_vec(&src).map_err(|e| Error::Invalid(e.to_string()))?;
    if !m.store.compare_and_put(&key, None, value).await? {
        return Err(Error::Invalid(format!(
            "source `{}` already exists; `dm ctl operate-source stop {}` first to change it",
            src.source_id, src.source_id
        )));
    }
    // A cluster's leader binds it to a free worker; standalone has one.
    if let Some(w) = &m.standalone_worker {
        m.store
            .put(&keys::bound(&src.source_id), w.clone().into_bytes())
            .await?;
    }
    let mut view = view_of(m, src).await?;
    view.warnings = SourceConfig::compat_warnings(&body.file, &body.content);
    Ok(view)
}

/// `operate-source update` (TiDB DM's): a source's file replaced while no task uses it.
pub async fn update(m: &Master, id: &str, body: FileBody) -> Result<SourceView, Error> {
    let mut src = SourceConfig::parse(&body.file, &body.content)?;
    if src.source_id != id {
        return Err(Error::Invalid(format!(
            "the file is for source `{}`, not `{id}`",
            src.source_id
        )));
    }
    let key = keys::source(id);
    let Some(old) = m.store.get(&key).await? else {
        return Err(Error::NotFound(format!(
            "source `{id}` does not exist; `dm ctl operate-source create` it"
        )));
    };
    for (_, t) in meta::list_json::<TaskConfig>(m.store.as_ref(), keys::TASK).await? {
        if t.instance(id).is_some() {
            return Err(Error::Invalid(format!(
                "source `{id}` is used by task `{}`; stop the task first (its checkpoints stay), update, start it again",
                t.name
            )));
        }
    }
    probe_source(&src).await?;
    src.from.seal_password()?;
    let value = serde_json::to_vec(&src).map_err(|e| Error::Invalid(e.to_string()))?;
    if !m.store.compare_and_put(&key, Some(&old), value).await? {
        return Err(Error::Invalid(format!(
            "source `{id}` changed while it was being updated; try again"
        )));
    }
    let mut view = view_of(m, src).await?;
    view.warnings = SourceConfig::compat_warnings(&body.file, &body.content);
    Ok(view)
}

pub async fn stop(m: &Master, id: &str) -> Result<Stopped, Error> {
    if m.store.get(&keys::source(id)).await?.is_none() {
        return Err(Error::NotFound(format!("source `{id}` does not exist")));
    }
    for (_, t) in meta::list_json::<TaskConfig>(m.store.as_ref(), keys::TASK).await? {
        if t.instance(id).is_some() {
            return Err(Error::Invalid(format!(
                "source `{id}` is used by task `{}`; stop the task first",
                t.name
            )));
        }
    }
    m.store.delete(&keys::bound(id)).await?;
    m.store.delete(&keys::source(id)).await?;
    for key in [
        keys::relay_stage(id),
        keys::relay_purge(id),
        keys::relay_status(id),
    ] {
        m.store.delete(&key).await?;
    }
    Ok(Stopped {
        stopped: id.to_string(),
        sources: vec![],
    })
}
