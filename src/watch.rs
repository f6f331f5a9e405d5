//! `dm ctl query-status <task> --watch`: progress bars that follow a task until it finishes,
//! pauses, or reaches the incremental phase and the user stops watching (Ctrl-C).

use crate::ctl::Client;
use anyhow::{bail, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

fn num(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:<28} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

pub async fn watch(client: &Client, task: &str) -> Result<()> {
    let multi = MultiProgress::new();
    let mut bars: BTreeMap<String, ProgressBar> = BTreeMap::new();
    let mut bar = |key: String, prefix: String| -> ProgressBar {
        bars.entry(key)
            .or_insert_with(|| {
                let b = multi.add(ProgressBar::new(0));
                b.set_style(bar_style());
                b.set_prefix(prefix);
                b
            })
            .clone()
    };
    loop {
        let v = client
            .call(reqwest::Method::GET, &format!("/api/v1/tasks/{task}"), None)
            .await?;
        let subtasks = v
            .get("subtasks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut all_done = !subtasks.is_empty();
        for st in &subtasks {
            let source = st.get("source_id").and_then(Value::as_str).unwrap_or("?");
            let stage = st.get("stage").and_then(Value::as_str).unwrap_or("");
            let rows_s = st
                .get("rows_per_sec")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            if stage == "paused" {
                let err = st.get("last_error").cloned().unwrap_or(Value::Null);
                multi.clear()?;
                bail!(
                    "{task}/{source} paused: {}\n  hint: {}",
                    err.get("message").and_then(Value::as_str).unwrap_or(""),
                    err.get("hint").and_then(Value::as_str).unwrap_or("")
                );
            }
            let total = bar(source.to_string(), format!("{source} (all tables)"));
            if st.get("phase").and_then(Value::as_str) == Some("full") {
                all_done &= stage == "finished";
                total.set_length(num(st, "rows_estimated").max(num(st, "rows_loaded")));
                total.set_position(num(st, "rows_loaded"));
                let eta = st
                    .get("eta_seconds")
                    .and_then(Value::as_u64)
                    .map(|s| format!(", ETA {s} s"))
                    .unwrap_or_default();
                total.set_message(format!("rows, {rows_s:.0} rows/s{eta}"));
                for t in st
                    .get("tables")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let name = t.get("table").and_then(Value::as_str).unwrap_or("?");
                    let b = bar(format!("{source}/{name}"), format!("  {name}"));
                    b.set_length(num(t, "chunks_total"));
                    b.set_position(num(t, "chunks_done"));
                    b.set_message(format!(
                        "chunks, {} rows, {:.1} MiB",
                        num(t, "rows"),
                        num(t, "bytes") as f64 / 1048576.0
                    ));
                }
            } else {
                all_done &= stage == "finished";
                total.set_length(1);
                total.set_position(u64::from(st.get("lag_seconds") == Some(&Value::from(0))));
                total.set_message(format!(
                    "incremental: {rows_s:.0} rows/s, lag {} s, queue {}, at {}",
                    st.get("lag_seconds")
                        .map(Value::to_string)
                        .unwrap_or_default(),
                    num(st, "queue_depth"),
                    st.get("position").and_then(Value::as_str).unwrap_or("")
                ));
            }
        }
        if all_done {
            for b in bars.values() {
                b.finish();
            }
            if !multi.is_hidden() {
                println!();
            }
            println!("{task}: finished");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
