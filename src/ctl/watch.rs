//! `dm ctl query-status <task> --watch`: progress bars that follow a task until it finishes,
//! pauses, or reaches the incremental phase and the user stops watching (Ctrl-C).

use anyhow::{bail, Result};
use dm_core::api::types::{Phase, Stage, SubtaskStatus};
use dm_core::api::Client;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::time::Duration;

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:<28} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// The bars of one task: per subtask, and per table in the full phase.
struct Bars {
    multi: MultiProgress,
    bars: BTreeMap<String, ProgressBar>,
}

impl Bars {
    fn bar(&mut self, key: String, prefix: String) -> ProgressBar {
        self.bars
            .entry(key)
            .or_insert_with(|| {
                let b = self.multi.add(ProgressBar::new(0));
                b.set_style(bar_style());
                b.set_prefix(prefix);
                b
            })
            .clone()
    }

    /// Draws one subtask.
    fn show(&mut self, st: &SubtaskStatus) {
        let source = &st.source_id;
        let total = self.bar(source.clone(), format!("{source} (all tables)"));
        if st.phase == Phase::Full {
            total.set_length(st.rows_estimated.max(st.rows_loaded));
            total.set_position(st.rows_loaded);
            let eta = st
                .eta_seconds
                .map(|s| format!(", ETA {s} s"))
                .unwrap_or_default();
            total.set_message(format!("rows, {:.0} rows/s{eta}", st.rows_per_sec));
            // The status lists the tables being copied (and the next ones): a table that
            // left the list is done, and its bar goes.
            let listed: Vec<String> = st
                .tables
                .iter()
                .map(|t| format!("{source}/{}", t.table))
                .collect();
            let prefix = format!("{source}/");
            self.bars.retain(|k, b| {
                let keep = !k.starts_with(&prefix) || listed.contains(k);
                if !keep {
                    b.finish_and_clear();
                }
                keep
            });
            for t in &st.tables {
                let b = self.bar(format!("{source}/{}", t.table), format!("  {}", t.table));
                b.set_length(t.chunks_total);
                b.set_position(t.chunks_done);
                b.set_message(if t.indexes_building > 0 {
                    format!("chunks, building {} indexes", t.indexes_building)
                } else {
                    format!(
                        "chunks, {} rows, {:.1} MiB",
                        t.rows,
                        t.bytes as f64 / 1048576.0
                    )
                });
            }
        } else {
            total.set_length(1);
            total.set_position(u64::from(st.lag_seconds == Some(0)));
            total.set_message(format!(
                "incremental: {:.0} rows/s, lag {} s, queue {}, at {}",
                st.rows_per_sec,
                st.lag_seconds.map(|l| l.to_string()).unwrap_or_default(),
                st.queue_depth,
                st.position
            ));
        }
    }
}

pub async fn watch(client: &Client, task: &str) -> Result<()> {
    let mut bars = Bars {
        multi: MultiProgress::new(),
        bars: BTreeMap::new(),
    };
    loop {
        let view = client.get_task(task).await?;
        for st in &view.subtasks {
            if st.stage == Stage::Paused {
                bars.multi.clear()?;
                let (message, hint) = st
                    .last_error
                    .as_ref()
                    .map(|e| (e.message.as_str(), e.hint.as_str()))
                    .unwrap_or_default();
                bail!("{task}/{} paused: {message}\n  hint: {hint}", st.source_id);
            }
            bars.show(st);
        }
        let all_done =
            !view.subtasks.is_empty() && view.subtasks.iter().all(|s| s.stage == Stage::Finished);
        if all_done {
            for b in bars.bars.values() {
                b.finish();
            }
            if !bars.multi.is_hidden() {
                println!();
            }
            println!("{task}: finished");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
