//! Keeps every row: what a plugin costs by itself (bench/incremental.sh measures it).
use dm_plugin_sdk::*;

#[row_filter]
fn keep(_row: &RowChange) -> Verdict {
    Verdict::Keep
}
