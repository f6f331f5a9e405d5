//! dm-core's rows and the SDK's wire types, both ways.

use dm_core::datum::Datum;
use dm_core::hooks::{HookRow, PluginError, RowVerdict};
use dm_core::table::{ColumnKind, RowOp, Table};
use dm_plugin_sdk as sdk;

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
/// into one. Written by hand, not through serde: per value serde's machinery cost more than
/// the bytes (the guest skips values the same way, `sdk/src/row_view.rs`).
pub fn encode_batch(table: &Table, rows: &[HookRow], out: &mut Vec<u8>) {
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
    out.clear();
    out.reserve(64 + values);
    let mut w = Wire(std::mem::take(out));
    w.text(&table.name.schema);
    w.text(&table.name.table);
    w.len(table.columns.len());
    for c in &table.columns {
        w.text(&c.name);
    }
    w.len(rows.len());
    for r in rows {
        w.varint(op(r.op) as u64);
        w.image(r.before.as_deref());
        w.image(r.after.as_deref());
    }
    *out = w.0;
}

/// A row filter's answer, read where it lies in guest memory.
pub enum Answer {
    /// Every row kept (the usual answer), read without decoding a verdict each.
    AllKept(usize),
    Verdicts(Vec<sdk::Verdict>),
}

impl Answer {
    pub fn read(bytes: &[u8]) -> Result<Answer, String> {
        match all_kept(bytes) {
            Some(n) => Ok(Answer::AllKept(n)),
            None => sdk::decode(bytes).map(Answer::Verdicts),
        }
    }

    /// One verdict per row answered for, in dm's terms.
    pub fn verdicts(self, table: &Table) -> Result<Vec<RowVerdict>, PluginError> {
        match self {
            Answer::AllKept(n) => Ok(vec![RowVerdict::Keep; n]),
            Answer::Verdicts(v) => v.into_iter().map(|v| verdict(table, v)).collect(),
        }
    }
}

/// The number of verdicts of an answer whose verdicts are all `Keep` (postcard: the count,
/// then variant 0 for each), or `None` for any other answer.
fn all_kept(answer: &[u8]) -> Option<usize> {
    let (n, rest) = postcard::take_from_bytes::<usize>(answer).ok()?;
    (rest.len() == n && rest.iter().all(|b| *b == 0)).then_some(n)
}

/// Postcard's encoding of the types a request holds: fields in order, lengths and enum
/// variants as varints, signed integers zigzagged, floats as 8 little-endian bytes. The
/// variant numbers are the order of `sdk::Value`'s and `sdk::Op`'s variants.
struct Wire(Vec<u8>);

impl Wire {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn len(&mut self, n: usize) {
        self.varint(n as u64);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }

    fn text(&mut self, t: &str) {
        self.bytes(t.as_bytes());
    }

    fn image(&mut self, image: Option<&[Datum]>) {
        let Some(image) = image else {
            self.0.push(0);
            return;
        };
        self.0.push(1);
        self.len(image.len());
        for d in image {
            match d {
                Datum::Null => self.varint(0),
                Datum::Int(i) => {
                    self.varint(1);
                    self.varint(((*i << 1) ^ (*i >> 63)) as u64);
                }
                Datum::UInt(u) => {
                    self.varint(2);
                    self.varint(*u);
                }
                Datum::Float(f) => self.float(*f as f64),
                Datum::Double(f) => self.float(*f),
                Datum::Decimal(t) => {
                    self.varint(4);
                    self.text(t);
                }
                Datum::Bytes(b) => {
                    self.varint(5);
                    self.bytes(b);
                }
                Datum::Temporal(t) => {
                    self.varint(6);
                    self.text(t);
                }
            }
        }
    }

    fn float(&mut self, f: f64) {
        self.varint(3);
        self.0.extend_from_slice(&f.to_le_bytes());
    }
}

fn op(op: RowOp) -> sdk::Op {
    match op {
        RowOp::Insert => sdk::Op::Insert,
        RowOp::Update => sdk::Op::Update,
        RowOp::Delete => sdk::Op::Delete,
    }
}

fn verdict(table: &Table, v: sdk::Verdict) -> Result<RowVerdict, PluginError> {
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
            // The edges of every varint and zigzag.
            HookRow {
                op: RowOp::Insert,
                before: None,
                after: Some(vec![
                    Datum::Int(i64::MIN),
                    Datum::UInt(0),
                    Datum::Float(-0.0),
                    Datum::Double(f64::MAX),
                    Datum::Decimal(String::new()),
                    Datum::Bytes(vec![7; 16_400]),
                    Datum::Int(i64::MAX),
                ]),
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
        let mut request = vec![1, 2, 3];
        encode_batch(&table, &rows, &mut request);
        assert_eq!(request, sdk::encode(&batch));
    }

    /// The fast reading of an all-`Keep` answer agrees with decoding it, and refuses
    /// anything else (which is then decoded, or refused as malformed).
    #[test]
    fn an_answer_that_keeps_every_row_is_read_as_such() {
        for n in [0, 1, 3, 127, 128, 300] {
            let keep = sdk::encode(&vec![sdk::Verdict::Keep; n]);
            assert_eq!(all_kept(&keep), Some(n));
            let mut one_dropped = vec![sdk::Verdict::Keep; n + 1];
            one_dropped[n / 2] = sdk::Verdict::Drop;
            assert_eq!(all_kept(&sdk::encode(&one_dropped)), None);
            let mut trailing = keep.clone();
            trailing.push(0);
            assert_eq!(all_kept(&trailing), None, "{n} verdicts and a stray byte");
            if n > 0 {
                assert_eq!(
                    all_kept(&keep[..keep.len() - 1]),
                    None,
                    "{n} verdicts, one short"
                );
            }
        }
        let set = vec![sdk::Verdict::Set(vec![("c".into(), sdk::Value::Int(0))])];
        assert_eq!(all_kept(&sdk::encode(&set)), None);
        assert_eq!(all_kept(&[]), None);
        assert_eq!(all_kept(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), None);
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
