//! `/metrics` of the master: Prometheus' text format for every subtask, relay, shard DDL
//! lock and validation, and the cluster's leader and workers.

use super::{validation, Master};
use crate::config::TaskConfig;
use crate::error::Error;
use crate::meta::{self, keys};
use crate::status::SubtaskStatus;

/// Prometheus text format: per subtask, stage, rows and lag.
pub async fn render(m: &Master) -> Result<String, Error> {
    let statuses: Vec<SubtaskStatus> =
        meta::list_json::<SubtaskStatus>(m.store.as_ref(), keys::STATUS)
            .await?
            .into_iter()
            .map(|(_, s)| s)
            .collect();
    let relays: Vec<crate::upstream::relay::RelayStatus> =
        meta::list_json(m.store.as_ref(), keys::RELAY_STATUS)
            .await?
            .into_iter()
            .map(|(_, s)| s)
            .collect();
    let mut out = crate::metrics::render(&statuses, &relays);
    shard_metrics(m, &mut out).await?;
    out.push_str(
        "# HELP dm_validation_differences Rows that differ between source and target at the last validation run.\n# TYPE dm_validation_differences gauge\n",
    );
    for (_, v) in
        meta::list_json::<validation::ValidationStatus>(m.store.as_ref(), keys::VALIDATION_STATUS)
            .await?
    {
        out.push_str(&format!(
            "dm_validation_differences{{task=\"{}\"}} {}\n",
            v.task, v.differences
        ));
    }
    if let Some(c) = &m.cluster {
        out.push_str(&format!(
            "# HELP dm_master_is_leader 1 on the leading master.\n# TYPE dm_master_is_leader gauge\ndm_master_is_leader {}\n",
            u8::from(c.is_leader())
        ));
        let workers = m.store.list(keys::ALIVE_WORKER).await?.len();
        let bound = m.store.list(keys::BOUND).await?.len();
        out.push_str(&format!(
            "# HELP dm_workers_alive Workers holding a lease.\n# TYPE dm_workers_alive gauge\ndm_workers_alive {workers}\n\
             # HELP dm_sources_bound Sources bound to a worker.\n# TYPE dm_sources_bound gauge\ndm_sources_bound {bound}\n"
        ));
    }
    Ok(out)
}

/// Shard DDL locks: DDLs waiting per merged table, and conflicts.
async fn shard_metrics(m: &Master, out: &mut String) -> Result<(), Error> {
    out.push_str(
        "# HELP dm_shard_ddl_pending Shard DDLs waiting for a decision, per merged table.\n# TYPE dm_shard_ddl_pending gauge\n\
         # HELP dm_shard_ddl_conflict 1 when a merged table's lock is in conflict.\n# TYPE dm_shard_ddl_conflict gauge\n",
    );
    for (_, task) in meta::list_json::<TaskConfig>(m.store.as_ref(), keys::TASK).await? {
        if task.shard_mode.is_none() {
            continue;
        }
        let locks = crate::shard::coordinator::task_locks(m.store.as_ref(), &task).await?;
        for (target, pending) in &locks.pending {
            out.push_str(&format!(
                "dm_shard_ddl_pending{{task=\"{}\",target=\"{}\"}} {}\n",
                label(&task.name),
                label(target),
                pending.len()
            ));
        }
        for (key, lock) in meta::list_json::<crate::shard::LockState>(
            m.store.as_ref(),
            &crate::shard::lock_prefix(&task.name),
        )
        .await?
        {
            let target = key.rsplit('/').next().unwrap_or_default();
            out.push_str(&format!(
                "dm_shard_ddl_conflict{{task=\"{}\",target=\"{}\"}} {}\n",
                label(&task.name),
                label(target),
                u8::from(lock.conflict.is_some())
            ));
        }
    }
    Ok(())
}

/// A label value as the exposition format reads it: a table name may hold `"`, `\` or a
/// newline, which would end the value or the line.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod label_tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::label("db.`a\"b\\c\nd`"), "db.`a\\\"b\\\\c\\nd`");
        assert_eq!(super::label("shop.orders"), "shop.orders");
    }
}
