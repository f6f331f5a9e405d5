//! `dm ctl plugin check <file.wasm>`: loads a plugin here (no master needed), reports its ABI
//! and hooks, and runs its row filter on sample rows.

use anyhow::{anyhow, Result};
use dm_core::db::Datum;
use dm_core::hooks::{HookRow, PluginSpec, RowFilter, RowVerdict};
use dm_core::schema::{Column, Table, TableName};
use dm_core::upstream::RowOp;
use dm_plugin_sdk as sdk;
use serde_json::{json, Value};
use std::path::Path;

fn column(name: &str, data_type: &str) -> Column {
    Column {
        name: name.into(),
        data_type: data_type.into(),
        unsigned: false,
        nullable: true,
        generated: false,
        members: vec![],
    }
}

/// A value as people read it.
fn show(d: &Datum) -> String {
    match d {
        Datum::Null => "NULL".into(),
        Datum::Int(i) => i.to_string(),
        Datum::UInt(u) => u.to_string(),
        Datum::Float(f) => f.to_string(),
        Datum::Double(f) => f.to_string(),
        Datum::Decimal(s) | Datum::Temporal(s) => s.clone(),
        Datum::Bytes(b) => format!("'{}'", String::from_utf8_lossy(b)),
    }
}

fn text(s: &str) -> Datum {
    Datum::Bytes(s.as_bytes().to_vec())
}

/// A report as JSON: file, ABI, hooks, and per sample row what the filter did.
pub fn check(file: &Path) -> Result<Value> {
    let spec = PluginSpec {
        path: file.to_path_buf(),
        timeout_ms: 1000,
        memory_mib: 256,
        config: None,
        sha256: None,
    };
    let plugin = dm_plugins::WasmHost::new()
        .open("check", &spec)
        .map_err(|e| anyhow!("{}: {e}", file.display()))?;
    let mut hooks = vec![];
    for (bit, name) in [
        (sdk::HOOK_ROW_FILTER, "row filter"),
        (sdk::HOOK_TABLE_ROUTER, "table router"),
        (sdk::HOOK_SHARD_DDL_POLICY, "shard DDL policy"),
    ] {
        if plugin.has(bit) {
            hooks.push(name);
        }
    }
    let mut samples = vec![];
    if plugin.has(sdk::HOOK_ROW_FILTER) {
        let table = Table {
            name: TableName::new("sample", "users"),
            columns: vec![
                column("id", "int"),
                column("email", "varchar"),
                column("deleted", "tinyint"),
                column("name", "varchar"),
            ],
            primary_key: vec!["id".into()],
            unique_keys: vec![],
            prefixed_keys: vec![],
        };
        let rows = [
            vec![
                Datum::Int(1),
                text("someone@example.com"),
                Datum::Int(0),
                text("kept"),
            ],
            vec![
                Datum::Int(2),
                text("gone@example.com"),
                Datum::Int(1),
                text("deleted"),
            ],
        ];
        let hook_rows: Vec<HookRow> = rows
            .iter()
            .map(|r| HookRow {
                op: RowOp::Insert,
                before: None,
                after: Some(r.clone()),
            })
            .collect();
        let verdicts = plugin
            .filter(&table, &hook_rows)
            .map_err(|e| anyhow!("the row filter failed on sample rows: {e}"))?;
        for (row, v) in rows.iter().zip(verdicts) {
            let shown: Vec<String> = row.iter().map(show).collect();
            let verdict = match v {
                RowVerdict::Keep => "keep".to_string(),
                RowVerdict::Drop => "drop".to_string(),
                RowVerdict::Set(cols) => format!(
                    "set {}",
                    cols.iter()
                        .map(|(i, d)| format!("{} = {}", table.columns[*i].name, show(d)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            samples.push(json!({ "row": shown.join(", "), "verdict": verdict }));
        }
    }
    Ok(json!({
        "file": file.display().to_string(),
        "abi_version": sdk::ABI_VERSION,
        "hooks": hooks,
        "sample_rows": samples,
    }))
}

pub fn render(v: &Value) -> String {
    let out = format!(
        "{}: plugin ABI {}, hooks: {}\n",
        v["file"].as_str().unwrap_or(""),
        v["abi_version"],
        v["hooks"]
            .as_array()
            .map(|h| h
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(vec![
            "Sample row (sample.users: id, email, deleted, name)",
            "Verdict",
        ]);
    for s in v["sample_rows"].as_array().cloned().unwrap_or_default() {
        t.add_row(vec![
            s["row"].as_str().unwrap_or("").to_string(),
            s["verdict"].as_str().unwrap_or("").to_string(),
        ]);
    }
    out + &t.to_string()
}
