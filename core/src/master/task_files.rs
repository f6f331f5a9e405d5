//! Edits of a task file apply to the running task: the master that started (or updated) a
//! task watches its file when it can read it (standalone: always) and applies a changed file
//! like `update-task`, uploading the plugins it names. An edit that is not valid leaves the
//! task as it runs and a warning in `query-status`.

use super::tasks::apply_update;
use super::Master;
use crate::api::types::FileBody;
use notify::{RecursiveMode, Watcher};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct TaskFiles {
    watchers: Mutex<HashMap<String, notify::RecommendedWatcher>>,
    warnings: Mutex<HashMap<String, String>>,
}

impl TaskFiles {
    pub fn warning(&self, task: &str) -> Option<String> {
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(task)
            .cloned()
    }

    fn warn(&self, task: &str, w: Option<String>) {
        let mut ws = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        match w {
            Some(w) => ws.insert(task.to_string(), w),
            None => ws.remove(task),
        };
    }

    /// Watches `file` (as `dm ctl` named it) for task `task`, if this process can see it and
    /// it holds `content`, the text the caller sent: the master reads no file an API caller
    /// merely names (its edits, and the errors quoting them, would come back to the caller).
    pub fn watch(&self, m: &Master, task: &str, file: &str, content: &str) {
        let path = PathBuf::from(file);
        if !path.is_absolute() {
            return;
        }
        // A regular file of the sent length only: a named device or FIFO (`/dev/zero`) is
        // never read.
        let same_size =
            std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == content.len() as u64);
        if !same_size || std::fs::read_to_string(&path).ok().as_deref() != Some(content) {
            tracing::info!(
                task,
                file,
                "not watching the task file: this master sees other content there"
            );
            return;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(16);
        let name = path.file_name().map(|n| n.to_os_string());
        let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                // Reading the file is an event too (open, close): reacting to those made each
                // read trigger the next, five reads a second per task forever (50 tasks held
                // an idle master at 16% of a core, bench/cluster.sh). Only changes count.
                let changed = ev.kind.is_modify() || ev.kind.is_create() || ev.kind.is_remove();
                if changed
                    && ev
                        .paths
                        .iter()
                        .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
                {
                    let _ = tx.try_send(());
                }
            }
        });
        let Ok(mut watcher) = watcher else { return };
        let Some(dir) = path.parent() else { return };
        if watcher.watch(dir, RecursiveMode::NonRecursive).is_err() {
            return;
        }
        // A new watcher replaces the old one, whose task then ends with its channel.
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(task.to_string(), watcher);
        let m = m.clone();
        let task = task.to_string();
        tokio::spawn(async move {
            let mut last = std::fs::read_to_string(&path).ok();
            while rx.recv().await.is_some() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                while rx.try_recv().is_ok() {}
                let Ok(content) = std::fs::read_to_string(&path) else {
                    continue;
                };
                if last.as_deref() == Some(content.as_str()) {
                    continue;
                }
                last = Some(content.clone());
                let result = match uploads(&path, &content) {
                    Ok(plugins) => {
                        let body = FileBody {
                            file: path.display().to_string(),
                            content,
                            remove_meta: false,
                            skip_precheck: false,
                            start_time: None,
                            plugins,
                        };
                        apply_update(&m, &task, &body).await.map(|_| ())
                    }
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => {
                        tracing::info!(task = %task, file = %path.display(), "task file edited: applied");
                        m.task_files.warn(&task, None);
                    }
                    Err(e) => {
                        tracing::warn!(task = %task, error = %e, "task file edited, not applied");
                        m.task_files.warn(
                            &task,
                            Some(format!(
                                "the edit of {} is not applied: [{}] {e}",
                                path.display(),
                                e.code()
                            )),
                        );
                    }
                }
            }
        });
    }
}

/// The plugin modules the task file names, as `dm ctl` sends them.
fn uploads(path: &Path, content: &str) -> crate::Result<BTreeMap<String, String>> {
    let task = crate::config::TaskConfig::parse(&path.display().to_string(), content)?;
    crate::meta::plugins::read_task_plugins(path, &task)
}
