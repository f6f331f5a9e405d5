//! The load checks of a subtask (`max-load` on the source, `max-target-load` on the target):
//! once a second, the global status variables the running phase names are read and compared
//! with their limits; above one, the subtask's throttle holds it until they fall. A server
//! that cannot be asked (down, or a source of binlog files) holds nothing: the phases meet
//! that themselves.

use crate::config::DbConfig;
use crate::error::DbRole;
use crate::status::Progress;
use crate::throttle::LoadLimit;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::Arc;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(1);

/// One server's check, with its session (made when first needed, dropped on an error).
struct Check {
    role: DbRole,
    db: DbConfig,
    conn: Option<Conn>,
}

impl Check {
    /// Why the server is too busy, if it is.
    async fn over(&mut self, limits: &[LoadLimit]) -> Option<String> {
        if limits.is_empty() {
            return None;
        }
        if self.conn.is_none() {
            self.conn = crate::db::connect(&self.db, self.role).await.ok();
        }
        let c = self.conn.as_mut()?;
        // Names were checked when the task file was read: letters, digits and `_` only.
        let names: Vec<String> = limits.iter().map(|l| format!("'{}'", l.variable)).collect();
        let sql = format!(
            "SHOW GLOBAL STATUS WHERE Variable_name IN ({})",
            names.join(",")
        );
        let values: Vec<(String, String)> = match c.query(sql).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(server = %self.db.addr(), error = %e, "load check: cannot read the server's status");
                self.conn = None;
                return None;
            }
        };
        let server = self.role;
        limits.iter().find_map(|l| {
            let (_, v) = values
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&l.variable))?;
            let v: u64 = v.parse().ok()?;
            (v > l.limit)
                .then(|| format!("{server} {}={v} above its limit {}", l.variable, l.limit))
        })
    }
}

/// Runs until dropped.
pub async fn run(source: DbConfig, target: DbConfig, progress: Arc<Progress>) {
    let mut checks = [
        Check {
            role: DbRole::Source,
            db: source,
            conn: None,
        },
        Check {
            role: DbRole::Target,
            db: target,
            conn: None,
        },
    ];
    loop {
        tokio::time::sleep(EVERY).await;
        let (on_source, on_target) = progress.throttle.max_load();
        let mut over = checks[0].over(&on_source).await;
        if over.is_none() {
            over = checks[1].over(&on_target).await;
        }
        progress.throttle.set_load(over);
    }
}
