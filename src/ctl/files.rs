//! Files `dm ctl` reads and writes where it runs: task and source files sent to the master
//! (with the plugin modules a task names), a task's name read from its file, and TiDB DM's
//! stored-file commands `get-config`, `config export` and `config import`.

use super::render::FileDone;
use anyhow::{anyhow, bail, Context, Result};
use dm_core::api::types::FileBody;
use dm_core::api::Client;
use std::collections::BTreeMap;
use std::path::Path;

/// The file at `path` as the API takes it.
pub fn file_body(path: &Path, remove_meta: bool) -> Result<FileBody> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Absolute: a master on this machine watches the file for edits.
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(FileBody {
        file: path.display().to_string(),
        plugins: plugin_uploads(&path, &content)?,
        content,
        remove_meta,
        ..FileBody::default()
    })
}

/// The plugin modules a task file names (paths relative to the file), base64, so that the
/// master and workers need not share this machine's disk. A file that does not parse is sent
/// as it is: the master reports its mistakes.
fn plugin_uploads(path: &Path, content: &str) -> Result<BTreeMap<String, String>> {
    let Ok(task) = dm_core::config::TaskConfig::parse(&path.display().to_string(), content) else {
        return Ok(BTreeMap::new());
    };
    let modules =
        dm_core::meta::plugins::read_task_plugins(path, &task).map_err(|e| anyhow!("{e}"))?;
    Ok(modules.into_iter().collect())
}

/// dmctl takes a task's name or its task file: the name written in the file.
pub fn task_name(arg: &str) -> Result<String> {
    let path = Path::new(arg);
    let is_file = path.extension().is_some_and(|x| x == "yaml" || x == "yml") && path.is_file();
    if !is_file {
        return Ok(arg.to_string());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {arg}"))?;
    name_field(&text, "name").ok_or_else(|| anyhow!("{arg}: a task file names its task (`name:`)"))
}

/// A top-level string field of a YAML file (`name:` of a task, `source-id:` of a source).
pub fn name_field(yaml: &str, field: &str) -> Option<String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(yaml).ok()?;
    doc.get(field)?.as_str().map(str::to_string)
}

/// Writes every stored source to `<dir>/sources/<id>.yaml` and task to
/// `<dir>/tasks/<name>.yaml` (0600: passwords are in them, encrypted).
pub async fn export(client: &Client, dir: &Path) -> Result<Vec<FileDone>> {
    let mut written = vec![];
    for f in client.export_config().await? {
        // Names become paths here: only what a master can hold.
        if !matches!(f.kind.as_str(), "task" | "source") || !dm_core::config::is_safe_name(&f.name)
        {
            bail!(
                "the master sent a {} named `{}`, which is not a safe file name",
                f.kind,
                f.name
            );
        }
        let sub = dir.join(format!("{}s", f.kind));
        std::fs::create_dir_all(&sub)
            .with_context(|| format!("cannot create {}", sub.display()))?;
        let path = sub.join(format!("{}.yaml", f.name));
        dm_core::durable::write_atomically(&path, f.content.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(FileDone {
            kind: f.kind,
            name: Some(f.name),
            file: path.display().to_string(),
        });
    }
    Ok(written)
}

/// Creates the sources of `<dir>/sources/` and starts the tasks of `<dir>/tasks/` (each
/// resumes from its checkpoints in the target).
pub async fn import(client: &Client, dir: &Path) -> Result<Vec<FileDone>> {
    let mut done = vec![];
    for kind in ["source", "task"] {
        let sub = dir.join(format!("{kind}s"));
        let mut files: Vec<_> = match std::fs::read_dir(&sub) {
            Ok(d) => d.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", sub.display())),
        };
        files.retain(|p| p.extension().is_some_and(|x| x == "yaml"));
        files.sort();
        for file in files {
            let body = file_body(&file, false)?;
            let created = match kind {
                "source" => client.create_source(&body).await.map(drop),
                _ => client.start_task(&body).await.map(drop),
            };
            created.with_context(|| format!("importing {}", file.display()))?;
            done.push(FileDone {
                kind: kind.into(),
                name: None,
                file: file.display().to_string(),
            });
        }
    }
    Ok(done)
}
