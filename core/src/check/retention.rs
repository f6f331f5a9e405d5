//! check-task's `binlog retention`: whether the source still has the binlog the task resumes
//! from, and for how long (`upstream/retention.rs`).

use super::{finding, Finding, Level};
use crate::config::{SourceConfig, TaskConfig};
use crate::error::DbRole;

/// Whether the source still has the binlog the task resumes from (its checkpoint in the
/// target, or `meta`), and for how long; for a new task, whether the source keeps binlog
/// long enough for a full phase (its incremental phase starts where the full phase did).
pub(super) async fn binlog_retention(
    task: &TaskConfig,
    src: &SourceConfig,
    fresh: bool,
    subject: &str,
    conn: &mut mysql_async::Conn,
    out: &mut Vec<Finding>,
) {
    use crate::upstream::retention::{assess, expire_seconds};
    const CHECK: &str = "binlog retention";
    if !task.task_mode.has_incremental() {
        return;
    }
    let addr = src.from.addr();
    let id = src.source_id.as_str();
    let target = match fresh {
        true => None,
        false => crate::db::connect(&task.target_database, DbRole::Target)
            .await
            .ok(),
    };
    let mut needed = match target {
        Some(mut tgt) => {
            let meta = crate::checkpoint::MetaTables::new(&task.meta_schema, &task.name);
            // No meta tables yet: a new task.
            meta.needed_binlog(&mut tgt, &task.target_database.addr(), id)
                .await
                .ok()
                .flatten()
                .map(|p| (p, "its checkpoint"))
        }
        None => None,
    };
    if needed.is_none() && task.task_mode == crate::config::TaskMode::Incremental {
        needed = task
            .instance(id)
            .and_then(|i| i.meta.as_ref())
            .and_then(|m| m.binlog_name.clone())
            .map(|name| {
                let binlog = crate::position::BinlogPos { name, pos: 4 };
                (crate::position::Position { binlog, gtid: None }, "its meta")
            });
    }
    let Some((needed, from)) = needed else {
        if !task.task_mode.has_full() {
            return;
        }
        let Ok(expire) = expire_seconds(conn, &addr).await else {
            return;
        };
        let short = expire > 0 && expire < 86400 && !src.enable_relay;
        let keeps = if expire == 0 {
            "the source never purges its binlog by age".to_string()
        } else {
            format!("the source purges binlog older than {expire} s")
        };
        out.push(if short {
            finding(
                subject,
                CHECK,
                Level::Warn,
                format!("{keeps}: the incremental phase starts where the full phase did, so a full phase longer than that cannot go on"),
                "raise binlog_expire_logs_seconds on the source for the migration, or set enable-relay in the source file",
            )
        } else {
            finding(subject, CHECK, Level::Ok, keeps, "")
        });
        return;
    };
    let Ok(flavor) = crate::upstream::source_flavor(src, conn).await else {
        return;
    };
    let report = match assess(conn, flavor, &addr, &needed, src.enable_gtid).await {
        Ok(r) => r,
        Err(e) => {
            out.push(finding(
                subject,
                CHECK,
                Level::Warn,
                format!(
                    "cannot tell whether the source keeps binlog file {}: {e}",
                    needed.binlog.name
                ),
                &e.hint(),
            ));
            return;
        }
    };
    let resumes = format!(
        "the task resumes from binlog file {} ({from})",
        needed.binlog.name
    );
    out.push(match report.warning(false, None) {
        Some(_) if report.purged => finding(
            subject,
            CHECK,
            Level::Fail,
            format!("{resumes}, which the source no longer has (its oldest is {})", report.oldest),
            "start the task again with a new full copy (stop-task, then start-task --remove-meta with task-mode all), or restore the file on the source",
        ),
        Some(w) => finding(subject, CHECK, Level::Warn, w, "resume the task soon, or raise binlog_expire_logs_seconds on the source"),
        None => finding(
            subject,
            CHECK,
            Level::Ok,
            match report.purge_in_seconds {
                Some(left) => format!(
                    "{resumes}; the source keeps it for about {} more",
                    crate::status::human(left)
                ),
                None => format!("{resumes}; the source keeps it"),
            },
            "",
        ),
    });
}
