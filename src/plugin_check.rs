//! `dm ctl plugin check <file.wasm>`: loads a plugin here (no master needed), reports its ABI
//! and hooks, and runs its row filter on sample rows.

use anyhow::{anyhow, Result};
use dm_core::datum::Datum;
use dm_core::hooks::{HookRow, PluginSpec, RowFilter, RowVerdict};
use dm_core::table::{Column, RowOp, Table, TableName};
use dm_plugin_sdk as sdk;
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

/// What `plugin check` found.
#[derive(Debug, serde::Serialize)]
pub struct PluginReport {
    pub file: String,
    pub abi_version: u32,
    pub hooks: Vec<&'static str>,
    pub sample_rows: Vec<SampleRow>,
}

/// A sample row and what the row filter did with it.
#[derive(Debug, serde::Serialize)]
pub struct SampleRow {
    pub row: String,
    pub verdict: String,
}

/// Loads the plugin, lists its hooks, and runs its row filter on sample rows.
pub fn check(file: &Path) -> Result<PluginReport> {
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
            samples.push(SampleRow {
                row: shown.join(", "),
                verdict,
            });
        }
    }
    Ok(PluginReport {
        file: file.display().to_string(),
        abi_version: sdk::ABI_VERSION,
        hooks,
        sample_rows: samples,
    })
}

pub fn render(r: &PluginReport) -> String {
    let out = format!(
        "{}: plugin ABI {}, hooks: {}\n",
        r.file,
        r.abi_version,
        r.hooks.join(", ")
    );
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(vec![
            "Sample row (sample.users: id, email, deleted, name)",
            "Verdict",
        ]);
    for s in &r.sample_rows {
        t.add_row(vec![s.row.clone(), s.verdict.clone()]);
    }
    out + &t.to_string()
}
