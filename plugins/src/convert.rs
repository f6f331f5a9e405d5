//! dm-core's rows and the SDK's wire types, both ways.

use dm_core::datum::Datum;
use dm_core::hooks::{HookRow, PluginError, RowVerdict};
use dm_core::table::{Column, ColumnKind, RowOp, Table};
use dm_plugin_sdk as sdk;
use serde::{Serialize, Serializer};

/// `-12.5`, `1e-3`: what a DECIMAL literal may hold.
fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exp) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['-', '+']).unwrap_or(e))),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    !(int.is_empty() && frac.is_empty())
        && digits(int)
        && digits(frac)
        && exp.is_none_or(|e| !e.is_empty() && digits(e))
}

/// `2024-02-29`, `12:34:56.5`, `-838:59:59`, `2024-02-29 12:34:56.000001`: digits and the
/// separators of dates and times only.
fn is_temporal(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.' | b' '))
}

/// A plugin's value for a column. Decimal and temporal values are written into SQL as text,
/// so anything but a number or a date/time is refused here, before it reaches a statement.
fn datum(kind: ColumnKind, v: sdk::Value) -> Result<Datum, String> {
    Ok(match v {
        sdk::Value::Null => Datum::Null,
        sdk::Value::Int(i) => Datum::Int(i),
        sdk::Value::UInt(u) => Datum::UInt(u),
        sdk::Value::Float(f) if kind == ColumnKind::Float => Datum::Float(f as f32),
        sdk::Value::Float(f) => Datum::Double(f),
        sdk::Value::Decimal(s) if is_decimal(&s) => Datum::Decimal(s),
        sdk::Value::Decimal(s) => return Err(format!("Decimal(`{s}`) is not a number")),
        sdk::Value::Bytes(b) => Datum::Bytes(b),
        sdk::Value::Temporal(s) if is_temporal(&s) => Datum::Temporal(s),
        sdk::Value::Temporal(s) => return Err(format!("Temporal(`{s}`) is not a date or time")),
    })
}

/// The request of a row filter call, written straight from dm's rows: the bytes of the
/// `sdk::RowBatch` they make (a test holds the two equal), without first copying every value
/// into one.
pub fn encode_batch(table: &Table, rows: &[HookRow]) -> Vec<u8> {
    let view = BatchView {
        table: TableView {
            schema: &table.name.schema,
            table: &table.name.table,
        },
        columns: Names(&table.columns),
        rows: Rows(rows),
    };
    // Most of a request is its values: room for them from the start.
    let size = |d: &Datum| match d {
        Datum::Bytes(b) => b.len() + 3,
        Datum::Decimal(t) | Datum::Temporal(t) => t.len() + 3,
        _ => 9,
    };
    let values: usize = rows
        .iter()
        .flat_map(|r| r.before.iter().chain(&r.after))
        .flatten()
        .map(size)
        .sum();
    postcard::to_extend(&view, Vec::with_capacity(64 + values)).expect("encodable")
}

// The wire form of `sdk::RowBatch`, borrowed: postcard writes fields in order without names
// and enum variants by index, so these must keep the sdk types' field and variant order.
#[derive(Serialize)]
struct BatchView<'a> {
    table: TableView<'a>,
    columns: Names<'a>,
    rows: Rows<'a>,
}

#[derive(Serialize)]
struct TableView<'a> {
    schema: &'a str,
    table: &'a str,
}

struct Names<'a>(&'a [Column]);

impl Serialize for Names<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|c| c.name.as_str()))
    }
}

struct Rows<'a>(&'a [HookRow]);

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|r| RowView {
            op: op(r.op),
            before: r.before.as_deref().map(Image),
            after: r.after.as_deref().map(Image),
        }))
    }
}

fn op(op: RowOp) -> sdk::Op {
    match op {
        RowOp::Insert => sdk::Op::Insert,
        RowOp::Update => sdk::Op::Update,
        RowOp::Delete => sdk::Op::Delete,
    }
}

#[derive(Serialize)]
struct RowView<'a> {
    op: sdk::Op,
    before: Option<Image<'a>>,
    after: Option<Image<'a>>,
}

struct Image<'a>(&'a [Datum]);

impl Serialize for Image<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|d| match d {
            Datum::Null => ValueView::Null,
            Datum::Int(i) => ValueView::Int(*i),
            Datum::UInt(u) => ValueView::UInt(*u),
            Datum::Float(f) => ValueView::Float(*f as f64),
            Datum::Double(f) => ValueView::Float(*f),
            Datum::Decimal(t) => ValueView::Decimal(t),
            Datum::Bytes(b) => ValueView::Bytes(b),
            Datum::Temporal(t) => ValueView::Temporal(t),
        }))
    }
}

#[derive(Serialize)]
enum ValueView<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    Decimal(&'a str),
    Bytes(#[serde(with = "serde_bytes")] &'a [u8]),
    Temporal(&'a str),
}

pub fn verdict(table: &Table, v: sdk::Verdict) -> Result<RowVerdict, PluginError> {
    Ok(match v {
        sdk::Verdict::Keep => RowVerdict::Keep,
        sdk::Verdict::Drop => RowVerdict::Drop,
        sdk::Verdict::Set(cols) => RowVerdict::Set(
            cols.into_iter()
                .map(|(name, v)| {
                    let i = table.column_index(&name).ok_or_else(|| {
                        PluginError::BadAnswer(format!(
                            "set column `{name}`, which {} does not have",
                            table.name
                        ))
                    })?;
                    let d = datum(table.columns[i].kind(), v).map_err(|e| {
                        PluginError::BadAnswer(format!("set column `{name}` to {e}"))
                    })?;
                    Ok((i, d))
                })
                .collect::<Result<_, PluginError>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_the_bytes_of_the_sdk_batch_it_stands_for() {
        let table: Table = serde_json::from_value(serde_json::json!({
            "name": { "schema": "s", "table": "t" },
            "columns": [
                { "name": "id", "data_type": "bigint" },
                { "name": "u", "data_type": "bigint", "unsigned": true },
                { "name": "f", "data_type": "float" },
                { "name": "d", "data_type": "double" },
                { "name": "m", "data_type": "decimal" },
                { "name": "b", "data_type": "blob" },
                { "name": "at", "data_type": "datetime" },
            ],
        }))
        .unwrap();
        let image = vec![
            Datum::Int(-7),
            Datum::UInt(u64::MAX),
            Datum::Float(1.5),
            Datum::Double(-2.25),
            Datum::Decimal("12.50".into()),
            Datum::Bytes((0..=255).collect()),
            Datum::Temporal("2024-02-29 12:34:56".into()),
        ];
        let mut nulls = image.clone();
        nulls[5] = Datum::Null;
        let rows = vec![
            HookRow {
                op: RowOp::Insert,
                before: None,
                after: Some(image.clone()),
            },
            HookRow {
                op: RowOp::Update,
                before: Some(nulls.clone()),
                after: Some(image.clone()),
            },
            HookRow {
                op: RowOp::Delete,
                before: Some(nulls),
                after: None,
            },
        ];
        let value = |d: &Datum| match d {
            Datum::Null => sdk::Value::Null,
            Datum::Int(i) => sdk::Value::Int(*i),
            Datum::UInt(u) => sdk::Value::UInt(*u),
            Datum::Float(f) => sdk::Value::Float(*f as f64),
            Datum::Double(f) => sdk::Value::Float(*f),
            Datum::Decimal(s) => sdk::Value::Decimal(s.clone()),
            Datum::Bytes(b) => sdk::Value::Bytes(b.clone()),
            Datum::Temporal(s) => sdk::Value::Temporal(s.clone()),
        };
        let image = |i: &Option<Vec<Datum>>| i.as_ref().map(|r| r.iter().map(value).collect());
        let batch = sdk::RowBatch {
            table: sdk::TableRef {
                schema: "s".into(),
                table: "t".into(),
            },
            columns: table.columns.iter().map(|c| c.name.clone()).collect(),
            rows: rows
                .iter()
                .map(|r| sdk::WireRow {
                    op: op(r.op),
                    before: image(&r.before),
                    after: image(&r.after),
                })
                .collect(),
        };
        assert_eq!(encode_batch(&table, &rows), sdk::encode(&batch));
    }

    /// A plugin cannot smuggle SQL through a decimal or temporal value.
    #[test]
    fn decimal_and_temporal_values_are_checked() {
        let k = ColumnKind::Decimal;
        for ok in ["1", "-12.50", ".5", "1e-3", "+7"] {
            assert!(datum(k, sdk::Value::Decimal(ok.into())).is_ok(), "{ok}");
        }
        for bad in ["1'); DROP TABLE t; --", "", "1e", "0x10", "1 2"] {
            assert!(datum(k, sdk::Value::Decimal(bad.into())).is_err(), "{bad}");
        }
        let t = ColumnKind::DateTime;
        for ok in ["2024-02-29 12:34:56.000001", "-838:59:59", "2024-02-29"] {
            assert!(datum(t, sdk::Value::Temporal(ok.into())).is_ok(), "{ok}");
        }
        for bad in ["2024-01-01' OR '1'='1", "now()", ""] {
            assert!(datum(t, sdk::Value::Temporal(bad.into())).is_err(), "{bad}");
        }
    }
}
