//! dm-core's rows and the SDK's wire types, both ways.

use dm_core::db::Datum;
use dm_core::hooks::{HookRow, RowVerdict};
use dm_core::schema::{ColumnKind, Table};
use dm_core::upstream::RowOp;
use dm_plugin_sdk as sdk;

fn value(d: &Datum) -> sdk::Value {
    match d {
        Datum::Null => sdk::Value::Null,
        Datum::Int(i) => sdk::Value::Int(*i),
        Datum::UInt(u) => sdk::Value::UInt(*u),
        Datum::Float(f) => sdk::Value::Float(*f as f64),
        Datum::Double(f) => sdk::Value::Float(*f),
        Datum::Decimal(s) => sdk::Value::Decimal(s.clone()),
        Datum::Bytes(b) => sdk::Value::Bytes(b.clone()),
        Datum::Temporal(s) => sdk::Value::Temporal(s.clone()),
    }
}

fn datum(kind: ColumnKind, v: sdk::Value) -> Datum {
    match v {
        sdk::Value::Null => Datum::Null,
        sdk::Value::Int(i) => Datum::Int(i),
        sdk::Value::UInt(u) => Datum::UInt(u),
        sdk::Value::Float(f) if kind == ColumnKind::Float => Datum::Float(f as f32),
        sdk::Value::Float(f) => Datum::Double(f),
        sdk::Value::Decimal(s) => Datum::Decimal(s),
        sdk::Value::Bytes(b) => Datum::Bytes(b),
        sdk::Value::Temporal(s) => Datum::Temporal(s),
    }
}

pub fn batch(table: &Table, rows: &[HookRow]) -> sdk::RowBatch {
    let image = |i: &Option<Vec<Datum>>| i.as_ref().map(|r| r.iter().map(value).collect());
    sdk::RowBatch {
        table: sdk::TableRef {
            schema: table.name.schema.clone(),
            table: table.name.table.clone(),
        },
        columns: table.columns.iter().map(|c| c.name.clone()).collect(),
        rows: rows
            .iter()
            .map(|r| sdk::RowChange {
                op: match r.op {
                    RowOp::Insert => sdk::Op::Insert,
                    RowOp::Update => sdk::Op::Update,
                    RowOp::Delete => sdk::Op::Delete,
                },
                before: image(&r.before),
                after: image(&r.after),
                columns: Default::default(),
            })
            .collect(),
    }
}

pub fn verdict(table: &Table, v: sdk::Verdict) -> Result<RowVerdict, String> {
    Ok(match v {
        sdk::Verdict::Keep => RowVerdict::Keep,
        sdk::Verdict::Drop => RowVerdict::Drop,
        sdk::Verdict::Set(cols) => RowVerdict::Set(
            cols.into_iter()
                .map(|(name, v)| {
                    let i = table.column_index(&name).ok_or_else(|| {
                        format!("set column `{name}`, which {} does not have", table.name)
                    })?;
                    Ok((i, datum(table.columns[i].kind(), v)))
                })
                .collect::<Result<_, String>>()?,
        ),
    })
}
