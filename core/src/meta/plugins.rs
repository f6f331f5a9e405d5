//! Plugin modules in the metadata store, content-addressed (`keys::plugin`: the module in
//! base64 under its SHA-256). The master stores what `dm ctl` uploads with a task; workers load from
//! here, so a cluster needs no shared disk for plugins.

use super::MetaStore;
use crate::config::PluginSpec;
use crate::config::TaskConfig;
use crate::error::{Error, Result};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use super::keys;

/// The largest module stored: base64 of it must fit etcd's default request limit (1.5 MiB).
pub const MAX_MODULE_BYTES: usize = 1024 * 1024;

/// Stores every plugin of `task` from `uploaded` (name -> base64) and records its hash in the
/// task. The master reads no path an API caller names: `dm ctl` uploads the modules from where
/// it runs (a caller could otherwise have the master read any of its files).
pub async fn store_task_plugins(
    store: &dyn MetaStore,
    task: &mut TaskConfig,
    uploaded: &BTreeMap<String, String>,
) -> Result<()> {
    let b64 = base64::engine::general_purpose::STANDARD;
    for (name, spec) in task.plugins.iter_mut() {
        let bytes = match uploaded.get(name) {
            Some(text) => b64
                .decode(text)
                .map_err(|e| Error::Invalid(format!("plugin `{name}`: bad upload: {e}")))?,
            None => {
                return Err(Error::Invalid(format!(
                    "plugin `{name}` ({}) was not uploaded with the task: `dm ctl start-task` / `update-task` upload plugin files from where they run; the master reads no local path",
                    spec.path.display()
                )))
            }
        };
        if bytes.len() > MAX_MODULE_BYTES {
            return Err(Error::Invalid(format!(
                "plugin `{name}` is {} KiB: at most {} KiB can be stored (etcd's request limit); build it with `opt-level = \"s\"`, `strip = true` and `lto = true` (and wasm-opt -Os)",
                bytes.len() / 1024,
                MAX_MODULE_BYTES / 1024
            )));
        }
        let sha = format!("{:x}", Sha256::digest(&bytes));
        let key = keys::plugin(&sha);
        if store.get(&key).await?.is_none() {
            store.put(&key, b64.encode(&bytes).into_bytes()).await?;
        }
        spec.sha256 = Some(sha);
    }
    Ok(())
}

/// The modules `task` (read from `task_file`) names, by plugin name, base64: paths are
/// relative to the task file. What `dm ctl` uploads, and what a watched task file brings.
pub fn read_task_plugins(
    task_file: &std::path::Path,
    task: &TaskConfig,
) -> Result<BTreeMap<String, String>> {
    let dir = task_file.parent().unwrap_or(std::path::Path::new("."));
    let mut out = BTreeMap::new();
    for (name, spec) in &task.plugins {
        let file = dir.join(&spec.path);
        let bytes = std::fs::read(&file).map_err(|e| {
            Error::Invalid(format!(
                "plugin `{name}`: cannot read {}: {e}",
                file.display()
            ))
        })?;
        out.insert(
            name.clone(),
            base64::engine::general_purpose::STANDARD.encode(bytes),
        );
    }
    Ok(out)
}

/// The module of plugin `name`: its file when this process can read it (standalone, or a
/// shared disk: the newest version, as hot reload sees it), else the module stored with the
/// task.
pub async fn bytes_of(store: &dyn MetaStore, name: &str, spec: &PluginSpec) -> Result<Vec<u8>> {
    if let Ok(bytes) = std::fs::read(&spec.path) {
        return Ok(bytes);
    }
    let missing = |what: String| Error::Plugin {
        plugin: name.to_string(),
        hook: "load".into(),
        table: "-".into(),
        position: spec.path.display().to_string(),
        error: Box::new(crate::hooks::PluginError::Unusable(what)),
    };
    match &spec.sha256 {
        Some(sha) => {
            let text = store
                .get(&keys::plugin(sha))
                .await?
                .ok_or_else(|| missing(format!("module {sha} is not in the metadata store")))?;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| missing(format!("module {sha} is corrupt: {e}")))
        }
        None => std::fs::read(&spec.path)
            .map_err(|e| missing(format!("cannot read {}: {e}", spec.path.display()))),
    }
}

/// Loads (compiles) a plugin on a blocking thread: compiling takes ~1 ms per KB of module,
/// seconds for a big one, which on a runtime thread would stall the other tasks' streams
/// scheduled there.
pub async fn load_off_runtime(
    host: &std::sync::Arc<dyn crate::hooks::PluginHost>,
    name: &str,
    spec: &PluginSpec,
    bytes: Vec<u8>,
) -> std::result::Result<crate::hooks::LoadedPlugin, crate::hooks::PluginError> {
    let (host, name, spec) = (host.clone(), name.to_string(), spec.clone());
    tokio::task::spawn_blocking(move || host.load(&name, &spec, &bytes))
        .await
        .unwrap_or_else(|e| {
            Err(crate::hooks::PluginError::Unusable(format!(
                "the plugin host failed while loading it: {e}"
            )))
        })
}

/// Loads the plugins of `source_id` in `task` through the registered host, their bytes from
/// the metadata store.
pub async fn load_plugins(
    task: &crate::config::TaskConfig,
    source_id: &str,
    store: &dyn MetaStore,
    host: &crate::hooks::Host,
) -> crate::Result<crate::hooks::SubtaskPlugins> {
    let specs = task.plugins_of(source_id);
    let mut out = crate::hooks::SubtaskPlugins::default();
    if specs.is_empty() {
        return Ok(out);
    }
    let host = host.as_ref().ok_or_else(|| {
        crate::Error::Invalid("this process cannot run plugins (no plugin host)".into())
    })?;
    for (name, spec) in specs {
        let bytes = bytes_of(store, &name, &spec).await?;
        let loaded = load_off_runtime(host, &name, &spec, bytes)
            .await
            .map_err(|error| crate::Error::Plugin {
                plugin: name.clone(),
                hook: "load".into(),
                table: "-".into(),
                position: spec.path.display().to_string(),
                error: Box::new(error),
            })?;
        if let Some(r) = loaded.table_router {
            out.router.get_or_insert((name.clone(), r));
        }
        if let Some(f) = loaded.row_filter {
            out.row_filters.push((name, f));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task naming a plugin at a path on the master, without uploading it, is refused: the
    /// master reads no file an API caller names.
    #[tokio::test]
    async fn a_plugin_not_uploaded_is_refused_not_read_from_the_masters_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::meta::EmbeddedStore::open(dir.path()).unwrap();
        let mut task = TaskConfig::parse(
            "task.yaml",
            "name: t\ntarget-database:\n  host: 127.0.0.1\nmysql-instances:\n  - source-id: s1\n    plugins: [p]\nplugins:\n  p:\n    path: /etc/passwd\n",
        )
        .unwrap();
        let err = store_task_plugins(&store, &mut task, &BTreeMap::new())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("was not uploaded"), "{err}");
        assert!(store.list(keys::PLUGIN).await.unwrap().is_empty());
        let big = BTreeMap::from([(
            "p".to_string(),
            base64::engine::general_purpose::STANDARD.encode(vec![0u8; MAX_MODULE_BYTES + 1]),
        )]);
        let err = store_task_plugins(&store, &mut task, &big)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("at most 1024 KiB"), "{err}");
    }
}
