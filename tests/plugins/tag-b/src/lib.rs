//! Writes "b" into the `tag` column: tells which version handled a row.
use dm_plugin_sdk::*;

#[row_filter]
fn tag(_row: &RowChange) -> Verdict {
    Verdict::Set(vec![("tag".into(), Value::text("b"))])
}
