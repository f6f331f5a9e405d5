//! `get-config` and `config export` (TiDB DM's dmctl commands): the task and source files as
//! the master stores them, as YAML that `start-task` and `operate-source create` take back.
//! Passwords stay encrypted with the deployment's key.

use super::Master;
use crate::api::types::ConfigFile;
use crate::config::{SourceConfig, TaskConfig};
use crate::error::Error;
use crate::meta::{self, keys};
use serde::Serialize;

fn yaml<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_yaml::to_string(value).map_err(|e| Error::Invalid(format!("cannot write YAML: {e}")))
}

async fn file_of(m: &Master, kind: &str, name: &str) -> Result<ConfigFile, Error> {
    let content = match kind {
        "task" => match meta::get_json::<TaskConfig>(m.store.as_ref(), &keys::task(name)).await? {
            Some(t) => yaml(&t)?,
            None => return Err(Error::NotFound(format!("task `{name}` does not exist"))),
        },
        "source" => {
            match meta::get_json::<SourceConfig>(m.store.as_ref(), &keys::source(name)).await? {
                Some(s) => yaml(&s)?,
                None => return Err(Error::NotFound(format!("source `{name}` does not exist"))),
            }
        }
        "master" | "worker" => {
            return Err(Error::Invalid(format!(
                "dm stores no {kind} config: it is the file the {kind} was started with (`-c`)"
            )))
        }
        other => {
            return Err(Error::Invalid(format!(
                "no config kind `{other}`: use task or source"
            )))
        }
    };
    Ok(ConfigFile {
        kind: kind.to_string(),
        name: name.to_string(),
        content,
    })
}

/// `GET /api/v1/config/{kind}/{name}`.
pub async fn get(m: &Master, kind: &str, name: &str) -> Result<ConfigFile, Error> {
    file_of(m, kind, name).await
}

/// `GET /api/v1/config`: every source, then every task.
pub async fn export(m: &Master) -> Result<Vec<ConfigFile>, Error> {
    let mut out = vec![];
    for (_, s) in meta::list_json::<SourceConfig>(m.store.as_ref(), keys::SOURCE).await? {
        out.push(ConfigFile {
            kind: "source".into(),
            name: s.source_id.clone(),
            content: yaml(&s)?,
        });
    }
    for (_, t) in meta::list_json::<TaskConfig>(m.store.as_ref(), keys::TASK).await? {
        out.push(ConfigFile {
            kind: "task".into(),
            name: t.name.clone(),
            content: yaml(&t)?,
        });
    }
    Ok(out)
}
