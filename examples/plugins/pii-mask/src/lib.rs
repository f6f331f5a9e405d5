//! PII masker: a column (`email`, or `config: {column: <name>}` in the task file) reaches the
//! target as a hash (FNV-1a, 64 bits, hex), so rows stay joinable by it without the value.
use dm_plugin_sdk::*;
use std::sync::OnceLock;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The column to mask, from the plugin's config.
fn column() -> &'static str {
    static COLUMN: OnceLock<String> = OnceLock::new();
    COLUMN.get_or_init(|| {
        config()
            .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
            .and_then(|c| c.get("column")?.as_str().map(str::to_string))
            .unwrap_or_else(|| "email".into())
    })
}

#[row_filter]
fn mask(row: &RowChange) -> Verdict {
    match row.get(column()) {
        Some(Value::Bytes(b)) => Verdict::Set(vec![(
            column().to_string(),
            Value::text(format!("{:016x}", fnv1a(b))),
        )]),
        _ => Verdict::Keep,
    }
}
