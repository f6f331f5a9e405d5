//! Soft-delete filter: rows marked `deleted = 1` do not reach the target.
use dm_plugin_sdk::*;

#[row_filter]
fn keep(row: &RowChange) -> Verdict {
    match row.get("deleted") {
        Some(Value::Int(1)) | Some(Value::UInt(1)) => Verdict::Drop,
        _ => Verdict::Keep,
    }
}
