//! Hot reload: a plugin whose `.wasm` file changes is loaded again off the hot path (notify
//! tells when; a short pause lets a copy finish) and takes over at the next transaction
//! boundary. A new version that does not load leaves the old one running and says why.

use super::{Plugin, WasmHost};
use dm_core::hooks::{HookRow, PluginError, PluginSpec, RowFilter, RowVerdict};
use dm_core::table::Table;
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Events closer than this are one change (an editor or `cp` writes in several steps).
const SETTLE: Duration = Duration::from_millis(200);

pub struct Reloading {
    name: String,
    current: RwLock<Arc<Plugin>>,
    staged: Mutex<Option<Arc<Plugin>>>,
    has_staged: AtomicBool,
    error: Mutex<Option<PluginError>>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Reloading {
    pub fn new(host: &WasmHost, name: &str, spec: &PluginSpec, first: Plugin) -> Arc<Self> {
        Arc::new_cyclic(|weak: &std::sync::Weak<Reloading>| {
            let watcher = watch(host.clone(), name.to_string(), spec.clone(), weak.clone());
            Reloading {
                name: name.to_string(),
                current: RwLock::new(Arc::new(first)),
                staged: Mutex::new(None),
                has_staged: AtomicBool::new(false),
                error: Mutex::new(None),
                _watcher: watcher,
            }
        })
    }

    fn reloaded(&self, result: Result<Plugin, PluginError>) {
        match result {
            Ok(p) => {
                tracing::info!(plugin = %self.name, "new plugin version loaded; it takes over at the next transaction");
                *self.staged.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(p));
                self.has_staged.store(true, Ordering::SeqCst);
                *self.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            Err(e) => {
                tracing::warn!(plugin = %self.name, error = %e, "new plugin version not loaded; the previous one runs");
                *self.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            }
        }
    }
}

/// Watches the plugin's directory (files are often replaced by a rename) and reloads on a
/// change of its file.
fn watch(
    host: WasmHost,
    name: String,
    spec: PluginSpec,
    target: std::sync::Weak<Reloading>,
) -> Option<notify::RecommendedWatcher> {
    let path: PathBuf = spec.path.clone();
    let file = path.file_name()?.to_os_string();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            if ev
                .paths
                .iter()
                .any(|p| p.file_name() == Some(file.as_os_str()))
            {
                let _ = tx.send(());
            }
        }
    })
    .map_err(|e| tracing::warn!(plugin = %name, error = %e, "cannot watch the plugin file"))
    .ok()?;
    watcher.watch(&dir, RecursiveMode::NonRecursive).ok()?;
    std::thread::Builder::new()
        .name(format!("dm-plugin-reload-{name}"))
        .spawn(move || {
            let mut last: Option<Vec<u8>> = std::fs::read(&path).ok();
            while rx.recv().is_ok() {
                // Let the writer finish; fold the burst of events into one.
                std::thread::sleep(SETTLE);
                while rx.try_recv().is_ok() {}
                let Some(target) = target.upgrade() else {
                    return;
                };
                let bytes = match std::fs::read(&path) {
                    Ok(b) => b,
                    Err(e) => {
                        target.reloaded(Err(PluginError::Unusable(format!(
                            "cannot read {}: {e}",
                            path.display()
                        ))));
                        continue;
                    }
                };
                if last.as_ref() == Some(&bytes) {
                    continue;
                }
                last = Some(bytes.clone());
                target.reloaded(host.open_bytes(&name, &bytes, &spec));
            }
        })
        .ok()?;
    Some(watcher)
}

impl RowFilter for Reloading {
    fn name(&self) -> &str {
        &self.name
    }

    fn filter(&self, table: &Table, rows: &[HookRow]) -> Result<Vec<RowVerdict>, PluginError> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        current.filter(table, rows)
    }

    fn at_boundary(&self) {
        if self.has_staged.swap(false, Ordering::SeqCst) {
            if let Some(p) = self.staged.lock().unwrap_or_else(|e| e.into_inner()).take() {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = p;
                tracing::info!(plugin = %self.name, "plugin reloaded");
            }
        }
    }

    fn reload_error(&self) -> Option<PluginError> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
