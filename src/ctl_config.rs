//! TiDB DM's dmctl commands for stored files: `get-config`, `config export` and `config import`
//! (every source and task, for backup and for moving to another deployment), and reading a
//! task name from a task file where dmctl takes either.

use crate::ctl::Client;
use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;

/// The stored `kind` (task, source) file `name`, as YAML.
pub async fn get_config(client: &Client, kind: &str, name: &str) -> Result<String> {
    let v = client
        .call(Method::GET, &format!("/api/v1/config/{kind}/{name}"), None)
        .await?;
    Ok(v["content"].as_str().unwrap_or_default().to_string())
}

/// Writes every stored source to `<dir>/sources/<id>.yaml` and task to
/// `<dir>/tasks/<name>.yaml` (0600: passwords are in them, encrypted).
pub async fn export(client: &Client, dir: &Path) -> Result<Value> {
    let files = client.call(Method::GET, "/api/v1/config", None).await?;
    let mut written = vec![];
    for f in files.as_array().into_iter().flatten() {
        let (kind, name) = (
            f["kind"].as_str().unwrap_or_default(),
            f["name"].as_str().unwrap_or_default(),
        );
        // Names become paths here: only what a master can hold.
        if !matches!(kind, "task" | "source") || !dm_core::config::is_safe_name(name) {
            bail!("the master sent a {kind} named `{name}`, which is not a safe file name");
        }
        let sub = dir.join(format!("{kind}s"));
        std::fs::create_dir_all(&sub)
            .with_context(|| format!("cannot create {}", sub.display()))?;
        let path = sub.join(format!("{name}.yaml"));
        dm_core::durable::write_atomically(
            &path,
            f["content"].as_str().unwrap_or_default().as_bytes(),
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(json!({"kind": kind, "name": name, "file": path.display().to_string()}));
    }
    Ok(Value::Array(written))
}

/// Creates the sources of `<dir>/sources/` and starts the tasks of `<dir>/tasks/` (each
/// resumes from its checkpoints in the target). Sources that exist are left as they are.
pub async fn import(client: &Client, dir: &Path) -> Result<Value> {
    let mut done = vec![];
    for (kind, path) in [("source", "/api/v1/sources"), ("task", "/api/v1/tasks")] {
        let sub = dir.join(format!("{kind}s"));
        let mut files: Vec<_> = match std::fs::read_dir(&sub) {
            Ok(d) => d.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", sub.display())),
        };
        files.retain(|p| p.extension().is_some_and(|x| x == "yaml"));
        files.sort();
        for file in files {
            let body = crate::ctl::file_body(&file, false)?;
            client
                .call(Method::POST, path, Some(body))
                .await
                .with_context(|| format!("importing {}", file.display()))?;
            done.push(json!({"kind": kind, "file": file.display().to_string()}));
        }
    }
    Ok(Value::Array(done))
}

/// dmctl takes a task's name or its task file: the name written in the file.
pub fn task_name(arg: &str) -> Result<String> {
    let path = Path::new(arg);
    let is_file = path.extension().is_some_and(|x| x == "yaml" || x == "yml") && path.is_file();
    if !is_file {
        return Ok(arg.to_string());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {arg}"))?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("{arg} is not YAML"))?;
    match doc.get("name").and_then(serde_yaml::Value::as_str) {
        Some(name) => Ok(name.to_string()),
        None => bail!("{arg}: a task file names its task (`name:`)"),
    }
}
