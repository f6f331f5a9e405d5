//! The load check of a subtask (`max-load`): once a second, the source's global status
//! variables the running phase names are read and compared with their limits; above one,
//! the subtask's throttle holds it until they fall. A source that cannot be asked (down, or
//! binlog files) holds nothing: the phases meet that themselves.

use crate::config::DbConfig;
use crate::error::DbRole;
use crate::status::Progress;
use mysql_async::prelude::Queryable;
use std::sync::Arc;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(1);

/// Runs until dropped.
pub async fn run(source: DbConfig, progress: Arc<Progress>) {
    let mut conn = None;
    loop {
        tokio::time::sleep(EVERY).await;
        let limits = progress.throttle.max_load();
        if limits.is_empty() {
            progress.throttle.set_load(None);
            continue;
        }
        if conn.is_none() {
            conn = crate::db::connect(&source, DbRole::Source).await.ok();
        }
        let Some(c) = conn.as_mut() else {
            progress.throttle.set_load(None);
            continue;
        };
        // Names were checked when the task file was read: letters, digits and `_` only.
        let names: Vec<String> = limits.iter().map(|l| format!("'{}'", l.variable)).collect();
        let sql = format!(
            "SHOW GLOBAL STATUS WHERE Variable_name IN ({})",
            names.join(",")
        );
        let values: Vec<(String, String)> = match c.query(sql).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "load check: cannot read the source's status");
                conn = None;
                progress.throttle.set_load(None);
                continue;
            }
        };
        let over = limits.iter().find_map(|l| {
            let (_, v) = values
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&l.variable))?;
            let v: u64 = v.parse().ok()?;
            (v > l.limit).then(|| format!("{}={v} above max-load {}", l.variable, l.limit))
        });
        progress.throttle.set_load(over);
    }
}
