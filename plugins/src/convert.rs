//! dm-core's rows and the SDK's wire types, both ways.

use dm_core::datum::Datum;
use dm_core::hooks::{HookRow, PluginError, RowVerdict};
use dm_core::table::{ColumnKind, RowOp, Table};
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
