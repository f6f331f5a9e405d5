//! Tables people read, from the API's typed answers: one function per kind of answer.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use dm_core::api::types::*;
use serde::Serialize;

pub(super) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    t
}

/// An enum as the API spells it (`running`, `full`, `warn`).
pub fn name_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "-".into(),
    }
}

pub(super) fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// `key: value` lines of a small answer (stopped, offline, transferred, unlocked).
pub fn plain<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::Object(o)) => o
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Ok(other) => other.to_string(),
        Err(e) => e.to_string(),
    }
}

pub fn sources(list: &[SourceView]) -> String {
    let mut t = table(&["Source", "Address", "User", "GTID", "Worker", "Relay"]);
    let mut errors = vec![];
    for src in list {
        let relay_text = match (&src.relay, src.enable_relay) {
            (_, false) => "off".to_string(),
            (None, true) => "starting".to_string(),
            (Some(relay), true) => {
                if let Some(e) = &relay.last_error {
                    errors.push(format!(
                        "{}: relay: {}\n  hint: {}",
                        src.source_id, e.message, e.hint
                    ));
                }
                format!(
                    "{} at {} ({} files, {})",
                    name_of(&relay.stage),
                    relay.position.as_deref().unwrap_or("-"),
                    relay.files,
                    human_bytes(relay.bytes)
                )
            }
        };
        t.add_row(vec![
            src.source_id.clone(),
            src.address.clone(),
            src.user.clone(),
            src.enable_gtid.to_string(),
            or_dash(src.worker.as_ref()),
            relay_text,
        ]);
    }
    let mut out = t.to_string();
    for e in errors {
        out += "\n";
        out += &e;
    }
    out
}

pub fn relay(r: &RelayAnswer) -> String {
    let stage = if r.enable_relay {
        or_dash(r.stage.as_ref().map(name_of))
    } else {
        "off".into()
    };
    let mut out = format!("source {}: relay {stage}", r.source_id);
    if let Some(p) = &r.purge {
        out += &format!("\nremoved {} file(s)", p.removed.len());
        if !p.removed.is_empty() {
            out += &format!(": {}", p.removed.join(", "));
        }
        if let Some(k) = &p.kept {
            out += &format!("\nkept from there on: {k}");
        }
        if let Some(e) = &p.error {
            out += &format!("\nerror: {e}");
        }
    }
    out
}

pub fn validation(v: &ValidationStatus) -> String {
    let result = match (&v.error, v.equal) {
        (Some(e), _) => format!("error: {}", e.message),
        (None, Some(true)) => "equal".into(),
        (None, Some(false)) => "DIFFERENT".into(),
        (None, None) => "not run yet".into(),
    };
    let mut t = table(&[
        "Task",
        "Every",
        "Runs",
        "Last run",
        "Tables",
        "Rows",
        "Differences",
        "Result",
    ]);
    t.add_row(vec![
        v.task.clone(),
        format!("{}s", v.interval_secs),
        v.runs.to_string(),
        v.last_finished.map_or("-".into(), |t| {
            format!("{}s ago", dm_core::status::now_secs().saturating_sub(t))
        }),
        v.tables.to_string(),
        v.rows.to_string(),
        v.differences.to_string(),
        result,
    ]);
    let mut out = t.to_string();
    if !v.diffs.is_empty() {
        let mut d = table(DIFF_HEADER);
        for (table, diff) in &v.diffs {
            d.add_row(diff_row(table, diff));
        }
        out += "\n";
        out += &d.to_string();
    }
    out
}

pub fn verify(reports: &[TableReport]) -> String {
    let mut t = table(&[
        "Source",
        "Table",
        "Target",
        "Rows",
        "Chunks",
        "Differences",
        "Result",
    ]);
    let mut diffs = table(DIFF_HEADER);
    for r in reports {
        let result = match (&r.skipped, r.differences, r.fixed) {
            (Some(why), _, _) => format!("skipped: {why}"),
            (None, 0, _) => "equal".into(),
            (None, _, true) => "fixed".into(),
            _ => "DIFFERENT".into(),
        };
        t.add_row(vec![
            r.source.clone(),
            r.table.clone(),
            r.target.clone(),
            r.rows.to_string(),
            r.chunks.to_string(),
            r.differences.to_string(),
            result,
        ]);
        for d in &r.diffs {
            diffs.add_row(diff_row(&r.target, d));
        }
    }
    if reports.iter().any(|r| !r.diffs.is_empty()) {
        format!("{t}\n{diffs}")
    } else {
        t.to_string()
    }
}

const DIFF_HEADER: &[&str] = &["Table", "Key", "Source row", "Target row", "Fix"];

/// A row that differs between source and target (verify, validation), with its fix.
fn diff_row(table: &str, d: &RowDiff) -> Vec<String> {
    vec![
        table.to_string(),
        d.key.clone(),
        or_dash(d.source.as_ref()),
        or_dash(d.target.as_ref()),
        d.fix.clone(),
    ]
}

pub fn schema(tables: &[TrackedTable]) -> String {
    let mut t = table(&["Table", "Columns", "Primary key"]);
    for tb in tables {
        let cols: Vec<String> = tb
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.data_type))
            .collect();
        t.add_row(vec![
            format!("{}.{}", tb.name.schema, tb.name.table),
            cols.join(", "),
            tb.primary_key.join(", "),
        ]);
    }
    t.to_string()
}

pub fn operators(ops: &[BinlogOperator]) -> String {
    let mut t = table(&["Source", "Position", "Action", "Statements"]);
    for o in ops {
        t.add_row(vec![
            o.source.clone(),
            o.position.clone(),
            o.action.clone(),
            o.sql.join(";\n"),
        ]);
    }
    t.to_string()
}

pub fn locks(list: &[LockReport]) -> String {
    if list.is_empty() {
        return "no shard DDL lock is waiting".into();
    }
    let mut t = table(&[
        "Task",
        "Target",
        "Mode",
        "Arrived",
        "Waiting for",
        "Conflict",
    ]);
    for l in list {
        let arrived: Vec<String> = l
            .arrived
            .iter()
            .map(|a| {
                format!(
                    "{}:{} sent {}",
                    a.shard.source,
                    a.shard.table,
                    a.ddls.join("; ")
                )
            })
            .collect();
        let waiting: Vec<String> = l
            .waiting_for
            .iter()
            .map(|w| format!("{}:{}", w.source, w.table))
            .chain(
                l.catching_up
                    .iter()
                    .map(|w| format!("{}:{} (released, catching up)", w.source, w.table)),
            )
            .collect();
        t.add_row(vec![
            l.task.clone(),
            l.target.clone(),
            l.mode.clone(),
            arrived.join("\n"),
            waiting.join("\n"),
            or_dash(l.conflict.as_ref()),
        ]);
    }
    t.to_string()
}

pub fn members(m: &Members) -> String {
    let mut out = vec![];
    if !m.masters.is_empty() {
        let mut t = table(&["Master", "Address", "Alive", "Leader"]);
        for ms in &m.masters {
            let addr = if ms.insecure {
                format!("{} INSECURE (no TLS/auth)", ms.addr)
            } else {
                ms.addr.clone()
            };
            t.add_row(vec![
                ms.name.clone(),
                addr,
                ms.alive.to_string(),
                ms.leader.to_string(),
            ]);
        }
        out.push(t.to_string());
    }
    if !m.workers.is_empty() {
        let mut t = table(&["Worker", "Stage", "Sources"]);
        for w in &m.workers {
            let sources = match w.sources.is_empty() {
                true => or_dash(w.source.as_ref()),
                false => w.sources.join(", "),
            };
            t.add_row(vec![w.name.clone(), w.stage.clone(), sources]);
        }
        out.push(t.to_string());
    }
    out.join("\n")
}

pub fn findings(list: &[Finding]) -> String {
    let mut t = table(&["Subject", "Check", "Level", "Finding", "Fix"]);
    for f in list {
        t.add_row(vec![
            f.subject.clone(),
            f.check.clone(),
            name_of(&f.level),
            f.message.clone(),
            f.fix.clone(),
        ]);
    }
    t.to_string()
}

/// What `config export` wrote and `config import` read.
#[derive(Debug, Serialize)]
pub struct FileDone {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub file: String,
}

pub fn files_done(files: &[FileDone]) -> String {
    let mut t = table(&["Kind", "Name", "File"]);
    for f in files {
        t.add_row(vec![
            f.kind.clone(),
            or_dash(f.name.as_ref()),
            f.file.clone(),
        ]);
    }
    t.to_string()
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n => format!("{:.1} KiB", n as f64 / 1024.0),
    }
}
