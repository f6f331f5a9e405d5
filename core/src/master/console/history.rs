//! The last hour of every task's lag and throughput, for the console's sparklines
//! (`GET /api/v1/history`): sampled every 10 s by the leading master (or the standalone), in
//! memory only, so a new leader starts with an empty hour.

use crate::api::types::{HistorySample as Sample, TaskView};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

pub const EVERY: Duration = Duration::from_secs(10);
/// One hour of samples.
pub const KEPT: usize = 360;

#[derive(Default)]
pub struct History {
    tasks: Mutex<BTreeMap<String, VecDeque<Sample>>>,
}

impl History {
    /// Adds a sample of each task in `views`; tasks no longer there are forgotten.
    pub fn record(&self, views: &[TaskView], at: u64) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|name, _| views.iter().any(|v| v.name == *name));
        for v in views {
            let samples = tasks.entry(v.name.clone()).or_default();
            samples.push_back(Sample {
                at,
                lag_seconds: v.subtasks.iter().filter_map(|s| s.lag_seconds).max(),
                rows_per_sec: v.subtasks.iter().map(|s| s.rows_per_sec).sum(),
            });
            while samples.len() > KEPT {
                samples.pop_front();
            }
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, Vec<Sample>> {
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
            .collect()
    }
}

/// Samples the tasks while this master leads (always in standalone).
pub async fn sample(m: super::super::Master) {
    loop {
        if m.cluster.as_ref().is_some_and(|c| !c.is_leader()) {
            continue;
        }
        match super::super::tasks::list(&m).await {
            Ok(views) => m
                .history
                .record(&views, crate::status::now_micros() / 1_000_000),
            Err(e) => tracing::debug!(error = %e, "cannot sample the tasks for the console"),
        }
        tokio::time::sleep(EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_an_hour_and_forgets_tasks_gone() {
        let h = History::default();
        let view = |name: &str| TaskView {
            name: name.into(),
            task_mode: "all".into(),
            stage: Default::default(),
            subtasks: vec![],
            warnings: vec![],
        };
        for i in 0..KEPT as u64 + 5 {
            h.record(&[view("a"), view("b")], i);
        }
        let s = h.snapshot();
        assert_eq!(s["a"].len(), KEPT);
        assert_eq!(s["a"][0].at, 5);
        h.record(&[view("b")], 1000);
        assert!(!h.snapshot().contains_key("a"));
    }
}
