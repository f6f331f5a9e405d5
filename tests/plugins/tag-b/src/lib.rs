//! Writes "b" into the `tag` column: tells which version handled a row.
use dm_plugin_sdk::*;

fn tag(_row: &RowChange) -> Verdict {
    Verdict::Set(vec![("tag".into(), Value::text("b"))])
}

row_filter!(tag);
