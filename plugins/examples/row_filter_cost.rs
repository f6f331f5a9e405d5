//! What one row filter call costs the host, per row change, on sysbench's row shape (an
//! UPDATE of `id, k, c CHAR(120), pad CHAR(60)`), after the plugin is loaded:
//!
//!   cargo run --release -p dm-plugins --example row_filter_cost -- <plugin.wasm> [calls] [gap-us]
//!
//! `gap-us` spaces the calls out as a replication stream does (a call per row event, the
//! dispatcher's other work between them); only the calls are timed.
//!
//! bench/incremental.sh measures the same end to end; this isolates the plugin call.
use dm_core::datum::Datum;
use dm_core::hooks::{HookRow, PluginHost, PluginSpec};
use dm_core::table::{RowOp, Table};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: row_filter_cost <plugin.wasm> [calls] [gap-us]");
    let calls: usize = args
        .next()
        .map_or(200_000, |n| n.parse().expect("a number"));
    let gap = std::time::Duration::from_micros(args.next().map_or(0, |n| n.parse().expect("µs")));
    let spec: PluginSpec =
        serde_json::from_value(serde_json::json!({ "path": path })).expect("a spec");
    let bytes = std::fs::read(&spec.path).expect("the plugin file");
    let host = dm_plugins::WasmHost::new();
    let filter = host
        .load("cost", &spec, &bytes)
        .expect("a loadable plugin")
        .row_filter
        .expect("a row filter");
    let table: Table = serde_json::from_value(serde_json::json!({
        "name": { "schema": "sbtest", "table": "sbtest1" },
        "columns": [
            { "name": "id", "data_type": "int" },
            { "name": "k", "data_type": "int" },
            { "name": "c", "data_type": "char" },
            { "name": "pad", "data_type": "char" },
        ],
        "primary_key": ["id"],
    }))
    .expect("a table");
    let image = |k: i64| {
        Some(vec![
            Datum::Int(42),
            Datum::Int(k),
            Datum::Bytes(vec![b'7'; 119]),
            Datum::Bytes(vec![b'3'; 59]),
        ])
    };
    let rows = vec![HookRow {
        op: RowOp::Update,
        before: image(1),
        after: image(2),
    }];
    for _ in 0..1000 {
        filter.filter(&table, &rows).expect("verdicts");
    }
    let mut spent = std::time::Duration::ZERO;
    for _ in 0..calls {
        let start = Instant::now();
        filter.filter(&table, &rows).expect("verdicts");
        spent += start.elapsed();
        // Busy, as the dispatcher is between row events.
        let until = Instant::now() + gap;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
    let ns = spent.as_nanos() as f64 / calls as f64;
    println!("{calls} calls of one row change, {gap:?} apart: {ns:.0} ns per call");
}
