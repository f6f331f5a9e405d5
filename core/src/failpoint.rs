//! Test-only fault injection, compiled into debug builds only: `DM_FAILPOINTS=name=millis,...`
//! makes `pause(name)` sleep that long, so a test can freeze a process at an exact step
//! (the integration tests run debug builds). Release builds do nothing here.

/// Sleeps as long as `DM_FAILPOINTS` says for `name` (debug builds only).
pub async fn pause(name: &str) {
    #[cfg(debug_assertions)]
    if let Some(ms) = configured(name) {
        tracing::warn!(failpoint = name, ms, "failpoint: pausing");
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

#[cfg(debug_assertions)]
fn configured(name: &str) -> Option<u64> {
    let all = std::env::var("DM_FAILPOINTS").ok()?;
    all.split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Whether `DM_FAILPOINTS` names `name` (debug builds only): for a step that must also run
/// alone, not overlapped with others, while a test holds it.
pub fn armed(name: &str) -> bool {
    #[cfg(debug_assertions)]
    return configured(name).is_some();
    #[cfg(not(debug_assertions))]
    {
        let _ = name;
        false
    }
}

/// True the first time it is asked in this process when `DM_FAILPOINTS` names `name` (debug
/// builds only): a fault that happens once, as a defect would.
pub fn once(name: &str) -> bool {
    #[cfg(debug_assertions)]
    {
        static FIRED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        if configured(name).is_none() {
            return false;
        }
        let mut fired = FIRED.lock().unwrap_or_else(|p| p.into_inner());
        if fired.iter().any(|f| f == name) {
            return false;
        }
        fired.push(name.to_string());
        true
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = name;
        false
    }
}

/// The milliseconds `DM_FAILPOINTS` gives `name` (debug builds only): a period a test
/// shortens. `None` in release builds.
pub fn millis(name: &str) -> Option<u64> {
    #[cfg(debug_assertions)]
    return configured(name);
    #[cfg(not(debug_assertions))]
    {
        let _ = name;
        None
    }
}
