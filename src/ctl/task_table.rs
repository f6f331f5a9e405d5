//! The task tables of `query-status` and of the commands that answer with a task: a compact
//! one that fits 100 columns (the default) and a wide one with every counter.

use super::render::{name_of, or_dash, table};
use comfy_table::{ColumnConstraint, ContentArrangement, Table};
use dm_core::api::types::{Phase, SubtaskStatus, TaskView};

/// A task table of `header`'s columns: a row per task warning (in the last column), one for
/// a task without subtasks (its stage in column `stage_at`), and `subtask_row(task, subtask)`
/// for each subtask.
fn task_table(
    tasks: &[TaskView],
    header: &[&str],
    stage_at: usize,
    subtask_row: impl Fn(&TaskView, &SubtaskStatus) -> Vec<String>,
) -> Table {
    let mut t = table(header);
    let dashes = |n: usize| std::iter::repeat_n("-".to_string(), n);
    for task in tasks {
        for w in &task.warnings {
            let mut row = vec![task.name.clone()];
            row.extend(dashes(header.len() - 2));
            row.push(format!("warning: {w}"));
            t.add_row(row);
        }
        if task.subtasks.is_empty() {
            let mut row = vec![task.name.clone()];
            row.extend(dashes(stage_at - 1));
            row.push(name_of(&task.stage));
            row.extend(dashes(header.len() - stage_at - 1));
            t.add_row(row);
        }
        for st in &task.subtasks {
            t.add_row(subtask_row(task, st));
        }
    }
    t
}

/// Every counter of every subtask (`--wide`), and what start, pause and resume answer.
pub fn tasks_wide(tasks: &[TaskView]) -> String {
    let header = [
        "Task",
        "Source",
        "Worker",
        "Stage",
        "Phase",
        "Tables",
        "Rows loaded",
        "Applied",
        "Position",
        "Lag (s)",
        "Queue",
        "Last error",
    ];
    task_table(tasks, &header, 3, |task, st| {
        let applied = format!(
            "{} rows\n{:.0} rows/s\n{:.0} txn/s",
            st.rows_applied, st.rows_per_sec, st.txns_per_sec
        );
        vec![
            task.name.clone(),
            st.source_id.clone(),
            st.worker.clone(),
            name_of(&st.stage),
            name_of(&st.phase),
            format!("{}/{}", st.tables_done, st.tables_total),
            st.rows_loaded.to_string(),
            applied,
            st.position.clone(),
            or_dash(st.lag_seconds),
            st.queue_depth.to_string(),
            subtask_note(st, true),
        ]
    })
    .to_string()
}

/// A subtask's last error (with its hint when `hint`), else its warnings and the online
/// schema changes waiting for their swap; `-` when there is nothing.
fn subtask_note(st: &SubtaskStatus, hint: bool) -> String {
    if let Some(e) = &st.last_error {
        let mut text = format!("[{}] {}", e.code, e.message);
        if hint {
            text.push_str(&format!("\nhint: {}", e.hint));
        }
        return text;
    }
    let mut notes: Vec<String> = st
        .warnings
        .iter()
        .map(|w| format!("warning: {w}"))
        .collect();
    // gh-ost/pt-osc runs under way: what waits for their swap.
    for o in &st.online_ddl {
        notes.push(format!(
            "{} on {}: {} statement(s) wait for the swap",
            o.tool,
            o.table,
            o.statements.len()
        ));
    }
    if let Some(t) = &st.throttle {
        notes.push(format!("throttle: {t}"));
    }
    // A table's secondary indexes built after its data: minutes on a big table, after the
    // last chunk (the phase would look stuck otherwise).
    for t in st.tables.iter().filter(|t| t.indexes_building > 0) {
        notes.push(format!(
            "indexes: {} building {} after the data",
            t.table, t.indexes_building
        ));
    }
    // Tables joining the running task (update-task, resync): their copy.
    if st.phase == Phase::Incremental {
        for t in &st.tables {
            notes.push(format!(
                "joining: {} {}/{} chunks",
                t.table, t.chunks_done, t.chunks_total
            ));
        }
    }
    if notes.is_empty() {
        "-".into()
    } else {
        notes.join("\n")
    }
}

/// Width of the default task table: it fits a 100-column terminal.
const COMPACT_WIDTH: u16 = 100;

/// The default task table: stage, phase and progress, lag, position and what is wrong, in
/// 100 columns (`--wide` for every counter).
pub fn tasks_compact(tasks: &[TaskView]) -> String {
    let header = [
        "Task",
        "Source",
        "Stage",
        "Progress",
        "Lag",
        "Position",
        "Error / notes",
    ];
    let mut t = task_table(tasks, &header, 2, |task, st| {
        let progress = if st.phase == Phase::Incremental {
            format!(
                "incremental: {} rows, {:.0}/s",
                st.rows_applied, st.rows_per_sec
            )
        } else {
            format!(
                "{}: {}/{} tables, {} rows",
                name_of(&st.phase),
                st.tables_done,
                st.tables_total,
                st.rows_loaded
            )
        };
        // The file and offset; the GTID set is in --wide and -o json.
        let position = st.position.split(' ').next().unwrap_or("-").to_string();
        vec![
            task.name.clone(),
            st.source_id.clone(),
            name_of(&st.stage),
            progress,
            or_dash(st.lag_seconds),
            position,
            subtask_note(st, false),
        ]
    });
    t.set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(COMPACT_WIDTH);
    // Names and positions stay whole; progress and notes wrap.
    for i in [0, 1, 2, 4, 5] {
        if let Some(c) = t.column_mut(i) {
            c.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    t.to_string()
}
