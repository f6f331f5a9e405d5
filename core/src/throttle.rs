//! Throttling: how fast a subtask may write rows to the target, and whether it waits. Three
//! things decide it: the phase's `max-rows-per-second` from the task file, what a user said
//! at runtime (`dm ctl throttle <task> on|off|rate N`), and the phase's load checks
//! (`max-load: Threads_running=50` on the source, `max-target-load` on the target), which
//! hold the subtask while a server is busier than that. Rows are paid for as they are handed
//! on (a token bucket that may go into debt, so a batch larger than a second's worth still
//! goes, and the next waits); a held subtask keeps its position and its sessions, it only
//! stops handing rows on. Limits are per subtask: a task on three sources may write three
//! times its `max-rows-per-second`.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;
// tokio's clock: real time in dm, a paused clock in tests.
use tokio::time::Instant;

/// What a user set at runtime for a task (`dm ctl throttle`), kept with its desired stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleSetting {
    /// `throttle on`: hold until `throttle off`.
    #[serde(default)]
    pub hold: bool,
    /// `throttle rate N`: rows per second in place of the task file's (0: no limit).
    #[serde(default)]
    pub rate: Option<u64>,
}

/// A load check: hold while a global status variable of the source is above a limit
/// (gh-ost's `--max-load`), written `Threads_running=50[,Name=limit...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadLimit {
    pub variable: String,
    pub limit: u64,
}

/// Parses `max-load`; the error says what is wrong with which part.
pub fn parse_max_load(text: &str) -> Result<Vec<LoadLimit>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, limit) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not Variable=limit (e.g. Threads_running=50)"))?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("`{name}` is not a status variable name"));
        }
        let limit = limit
            .trim()
            .parse()
            .map_err(|_| format!("`{}` in `{part}` is not a whole number", limit.trim()))?;
        out.push(LoadLimit {
            variable: name.to_string(),
            limit,
        });
    }
    Ok(out)
}

#[derive(Debug)]
struct State {
    /// The running phase's `max-rows-per-second` (0: none).
    configured: u64,
    /// The phase's load limits: on the source, on the target.
    max_load: Vec<LoadLimit>,
    max_target_load: Vec<LoadLimit>,
    user: ThrottleSetting,
    /// Why the load check holds the subtask, when it does.
    load: Option<String>,
    /// Rows that may go now; below zero: owed.
    tokens: f64,
    refilled: Instant,
}

impl State {
    fn rate(&self) -> u64 {
        self.user.rate.unwrap_or(self.configured)
    }

    fn held(&self) -> bool {
        self.user.hold || self.load.is_some()
    }
}

/// One subtask's throttle, shared by its phases, its load check and the worker.
#[derive(Debug)]
pub struct Throttle {
    state: Mutex<State>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            state: Mutex::new(State {
                configured: 0,
                max_load: Vec::new(),
                max_target_load: Vec::new(),
                user: ThrottleSetting::default(),
                load: None,
                tokens: 0.0,
                refilled: Instant::now(),
            }),
        }
    }
}

/// How often a waiting subtask looks again: a hold, a release or a new rate takes effect
/// within this, even for rows that owe minutes at the old rate.
const POLL: Duration = Duration::from_millis(100);

impl Throttle {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A phase starts: its `max-rows-per-second` (0: none) and load limits (on the source,
    /// on the target) apply.
    pub fn configure(
        &self,
        rows_per_second: u64,
        max_load: Vec<LoadLimit>,
        max_target_load: Vec<LoadLimit>,
    ) {
        let mut s = self.state();
        s.configured = rows_per_second;
        s.max_load = max_load;
        s.max_target_load = max_target_load;
        s.load = None;
    }

    /// What a user set at runtime.
    pub fn set_user(&self, setting: &ThrottleSetting) {
        let mut s = self.state();
        if s.user != *setting {
            tracing::info!(hold = setting.hold, rate = ?setting.rate, "throttle changed");
            s.user = setting.clone();
        }
    }

    /// The load limits of the running phase: (on the source, on the target).
    pub fn max_load(&self) -> (Vec<LoadLimit>, Vec<LoadLimit>) {
        let s = self.state();
        (s.max_load.clone(), s.max_target_load.clone())
    }

    /// The load check's verdict: why it holds the subtask, or `None`.
    pub fn set_load(&self, why: Option<String>) {
        let mut s = self.state();
        if s.load != why {
            match &why {
                Some(w) => tracing::warn!(reason = %w, "throttled: the source is busy"),
                None => tracing::info!("throttle released: the source's load is below its limits"),
            }
            s.load = why;
        }
    }

    /// Waits until `rows` more rows may go: they are paid for at the rate, and nothing goes
    /// while the subtask is held (a hold that comes while rows wait for their turn holds them
    /// too).
    pub async fn take(&self, rows: u64) {
        let mut charged = false;
        loop {
            let wait = {
                let mut s = self.state();
                let now = Instant::now();
                let rate = s.rate();
                let earned = now.duration_since(s.refilled).as_secs_f64() * rate as f64;
                s.refilled = now;
                if s.held() {
                    // Time held pays what is owed but saves nothing up.
                    s.tokens = (s.tokens + earned).min(0.0);
                    POLL
                } else if rate == 0 {
                    return;
                } else {
                    // At most a second's worth saved up.
                    s.tokens = (s.tokens + earned).min(rate as f64);
                    if !charged {
                        s.tokens -= rows as f64;
                        charged = true;
                    }
                    // Paid (to a thousandth of a row: the clock's rounding).
                    if s.tokens > -0.001 {
                        return;
                    }
                    // Owed: wait until paid, looking again meanwhile (a hold or a new rate
                    // may have come).
                    Duration::from_secs_f64(-s.tokens / rate as f64).min(POLL)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// What status shows: why the subtask waits, or its limit; `None` when neither.
    pub fn describe(&self) -> Option<String> {
        let s = self.state();
        if s.user.hold {
            return Some("held by `dm ctl throttle on`".into());
        }
        if let Some(why) = &s.load {
            return Some(format!("held: {why}"));
        }
        match s.rate() {
            0 => None,
            r => Some(format!("{r} rows/s")),
        }
    }

    /// Whether the subtask waits now (held by a user or the load check).
    pub fn is_held(&self) -> bool {
        self.state().held()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_load_is_variable_equals_limit() {
        assert_eq!(
            parse_max_load("Threads_running=50, Threads_connected=900").unwrap(),
            vec![
                LoadLimit {
                    variable: "Threads_running".into(),
                    limit: 50
                },
                LoadLimit {
                    variable: "Threads_connected".into(),
                    limit: 900
                }
            ]
        );
        assert!(parse_max_load("Threads_running")
            .unwrap_err()
            .contains("Variable=limit"));
        assert!(parse_max_load("Threads_running=lots")
            .unwrap_err()
            .contains("whole number"));
        assert!(parse_max_load("x'; DROP=1")
            .unwrap_err()
            .contains("status variable"));
    }

    #[test]
    fn a_user_setting_overrides_the_task_file_and_a_hold_says_why() {
        let t = Throttle::default();
        t.configure(2000, vec![], vec![]);
        assert_eq!(t.describe().as_deref(), Some("2000 rows/s"));
        t.set_user(&ThrottleSetting {
            hold: false,
            rate: Some(0),
        });
        assert_eq!(t.describe(), None);
        t.set_load(Some("Threads_running=61 above 50".into()));
        assert!(t.is_held());
        assert!(t.describe().unwrap().contains("Threads_running=61"));
        t.set_user(&ThrottleSetting {
            hold: true,
            rate: None,
        });
        assert!(t.describe().unwrap().contains("throttle on"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_that_comes_while_rows_wait_holds_them() {
        let t = std::sync::Arc::new(Throttle::default());
        t.configure(1000, vec![], vec![]);
        let start = tokio::time::Instant::now();
        let waiting = {
            let t = t.clone();
            tokio::spawn(async move { t.take(2000).await })
        };
        // Paid for after 2 s; held from 1 s to 5 s.
        tokio::time::sleep(Duration::from_secs(1)).await;
        t.set_load(Some("busy".into()));
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!waiting.is_finished(), "rows went while held");
        t.set_load(None);
        waiting.await.unwrap();
        assert!(
            start.elapsed() >= Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_rate_applies_to_rows_already_waiting() {
        let t = std::sync::Arc::new(Throttle::default());
        t.configure(10, vec![], vec![]);
        let start = tokio::time::Instant::now();
        // 1000 s owed at 10 rows/s.
        let waiting = {
            let t = t.clone();
            tokio::spawn(async move { t.take(10_000).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        t.set_user(&ThrottleSetting {
            hold: false,
            rate: Some(0),
        });
        waiting.await.unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rows_are_paid_for_at_the_rate() {
        let t = Throttle::default();
        t.configure(1000, vec![], vec![]);
        let start = tokio::time::Instant::now();
        for _ in 0..30 {
            t.take(100).await;
        }
        // 3000 rows at 1000 rows/s: the first second's worth may not wait (none was saved
        // up here), the rest does; the clock is tokio's paused one, so this is exact.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(2900), "{took:?}");
        assert!(took <= Duration::from_millis(3100), "{took:?}");
    }
}
