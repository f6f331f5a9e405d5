//! Prometheus text of subtasks and relay logs, served by the master (for the whole cluster,
//! from the metadata store) and by a worker with a `status-addr` (for what it runs).

use crate::status::{Stage, SubtaskStatus};
use crate::upstream::relay::{RelayStage, RelayStatus};
use std::collections::BTreeMap;
use std::fmt::Write;

const SUBTASK_HELP: &str = "\
# HELP dm_subtask_running 1 when the subtask runs.\n# TYPE dm_subtask_running gauge\n\
# HELP dm_rows_loaded_total Rows copied by the full phase.\n# TYPE dm_rows_loaded_total counter\n\
# HELP dm_rows_applied_total Row changes applied by the incremental phase.\n# TYPE dm_rows_applied_total counter\n\
# HELP dm_txns_applied_total Source transactions applied by the incremental phase.\n# TYPE dm_txns_applied_total counter\n\
# HELP dm_row_filter_batches_total Batches of row changes passed to the row filter plugins by the incremental phase.\n# TYPE dm_row_filter_batches_total counter\n\
# HELP dm_apply_queue_depth Transactions and change batches read from the binlog, not yet applied.\n# TYPE dm_apply_queue_depth gauge\n\
# HELP dm_lag_seconds Seconds between the source commit of the last applied change and now.\n# TYPE dm_lag_seconds gauge\n\
# HELP dm_subtask_throttled 1 while the subtask is held (dm ctl throttle on, or its max-load).\n# TYPE dm_subtask_throttled gauge\n\
# HELP dm_binlog_purge_in_seconds Seconds until the source may purge the binlog file a restart of the subtask reads (absent: never).\n# TYPE dm_binlog_purge_in_seconds gauge\n\
# HELP dm_binlog_needed_purged 1 when the source no longer has the binlog file a restart of the subtask reads.\n# TYPE dm_binlog_needed_purged gauge\n";

const RELAY_HELP: &str = "\
# HELP dm_relay_running 1 while the relay log of a source pulls from it.\n# TYPE dm_relay_running gauge\n\
# HELP dm_relay_bytes Bytes of relay log files on disk.\n# TYPE dm_relay_bytes gauge\n\
# HELP dm_relay_files Relay log files on disk.\n# TYPE dm_relay_files gauge\n\
# HELP dm_relay_error 1 while the relay cannot read the source, by code.\n# TYPE dm_relay_error gauge\n";

/// Subtask and relay metrics.
pub fn render(subtasks: &[SubtaskStatus], relays: &[RelayStatus]) -> String {
    let mut out = String::from(SUBTASK_HELP);
    let mut stages: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors = String::new();
    for s in subtasks {
        let l = format!("task=\"{}\",source=\"{}\"", s.task, s.source_id);
        let _ = write!(
            out,
            "dm_subtask_running{{{l}}} {}\ndm_rows_loaded_total{{{l}}} {}\n\
             dm_rows_applied_total{{{l}}} {}\ndm_txns_applied_total{{{l}}} {}\n\
             dm_row_filter_batches_total{{{l}}} {}\n\
             dm_apply_queue_depth{{{l}}} {}\ndm_subtask_throttled{{{l}}} {}\n",
            u8::from(s.stage == Stage::Running),
            s.rows_loaded,
            s.rows_applied,
            s.txns_applied,
            s.row_filter_batches,
            s.queue_depth,
            u8::from(s.throttled)
        );
        if let Some(lag) = s.lag_seconds {
            let _ = writeln!(out, "dm_lag_seconds{{{l}}} {lag}");
        }
        if let Some(r) = &s.binlog_retention {
            let _ = writeln!(out, "dm_binlog_needed_purged{{{l}}} {}", u8::from(r.purged));
            if let Some(left) = r.purge_in_seconds {
                let _ = writeln!(out, "dm_binlog_purge_in_seconds{{{l}}} {left}");
            }
        }
        if let Some(e) = &s.last_error {
            let _ = writeln!(errors, "dm_subtask_error{{{l},code=\"{}\"}} 1", e.code);
        }
        *stages
            .entry(format!("{:?}", s.stage).to_lowercase())
            .or_default() += 1;
    }
    out.push_str("# HELP dm_subtasks Subtasks by stage.\n# TYPE dm_subtasks gauge\n");
    for (stage, n) in stages {
        let _ = writeln!(out, "dm_subtasks{{stage=\"{stage}\"}} {n}");
    }
    out.push_str("# HELP dm_subtask_error 1 for the error a subtask last met, by code.\n# TYPE dm_subtask_error gauge\n");
    out.push_str(&errors);
    out.push_str(RELAY_HELP);
    for r in relays {
        let l = format!("source=\"{}\"", r.source_id);
        let _ = write!(
            out,
            "dm_relay_running{{{l}}} {}\ndm_relay_bytes{{{l}}} {}\ndm_relay_files{{{l}}} {}\n",
            u8::from(r.stage == RelayStage::Running && r.last_error.is_none()),
            r.bytes,
            r.files
        );
        if let Some(e) = &r.last_error {
            let _ = writeln!(out, "dm_relay_error{{{l},code=\"{}\"}} 1", e.code);
        }
    }
    out
}
