//! The rows a row filter sees, read from the request as the filter asks for them.
//!
//! A request is a [`RowBatch`](crate::RowBatch) in postcard's encoding. Decoding it whole gave
//! every value of every image its own allocation in the guest, for a filter that mostly looks
//! at one column or none (a pass-through filter spent most of its time there). Here the
//! request is only walked: the column names and the values stay borrowed from it, and an
//! image is decoded into [`Value`]s the first time the filter reads it.

use crate::{Op, Value, Verdict};
use serde::Deserialize;
use std::cell::OnceCell;

/// A value as it lies in the request: the wire form of [`Value`] (same variants, same order),
/// borrowing its text and bytes instead of copying them.
#[derive(Deserialize)]
enum ValueRef<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    Decimal(&'a str),
    Bytes(&'a [u8]),
    Temporal(&'a str),
}

impl From<ValueRef<'_>> for Value {
    fn from(v: ValueRef<'_>) -> Value {
        match v {
            ValueRef::Null => Value::Null,
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::UInt(u) => Value::UInt(u),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Decimal(s) => Value::Decimal(s.to_string()),
            ValueRef::Bytes(b) => Value::Bytes(b.to_vec()),
            ValueRef::Temporal(s) => Value::Temporal(s.to_string()),
        }
    }
}

type Taken<'a, T> = Result<(T, &'a [u8]), postcard::Error>;

/// An image of a row (before or after the change), decoded on first use.
struct Image<'a> {
    len: usize,
    /// Exactly its `len` encoded values.
    bytes: &'a [u8],
    values: OnceCell<Vec<Value>>,
}

impl<'a> Image<'a> {
    /// An `Option<Vec<Value>>` at the start of `bytes`, and what follows it. Every value is
    /// walked (not copied), so a malformed request is refused here, not when a value is read.
    fn take_option(bytes: &'a [u8]) -> Taken<'a, Option<Image<'a>>> {
        match bytes.split_first() {
            Some((0, rest)) => Ok((None, rest)),
            Some((1, rest)) => {
                let (len, start) = postcard::take_from_bytes::<usize>(rest)?;
                let mut end = start;
                for _ in 0..len {
                    end = postcard::take_from_bytes::<ValueRef>(end)?.1;
                }
                let bytes = &start[..start.len() - end.len()];
                let values = OnceCell::new();
                Ok((Some(Image { len, bytes, values }), end))
            }
            Some(_) => Err(postcard::Error::DeserializeBadOption),
            None => Err(postcard::Error::DeserializeUnexpectedEnd),
        }
    }

    fn values(&self) -> &[Value] {
        self.values.get_or_init(|| {
            let mut values = Vec::with_capacity(self.len);
            let mut rest = self.bytes;
            for _ in 0..self.len {
                let (v, r) = postcard::take_from_bytes::<ValueRef>(rest)
                    .expect("walked when the request was read");
                values.push(v.into());
                rest = r;
            }
            values
        })
    }
}

/// One row change of a table, as a row filter sees it.
pub struct RowChange<'a> {
    pub op: Op,
    columns: &'a [&'a str],
    before: Option<Image<'a>>,
    after: Option<Image<'a>>,
}

impl RowChange<'_> {
    /// The table's column names, in the order of the images' values.
    pub fn columns(&self) -> &[&str] {
        self.columns
    }

    /// Old image (updates, deletes).
    pub fn before(&self) -> Option<&[Value]> {
        self.before.as_ref().map(Image::values)
    }

    /// New image (inserts, updates; the copied row in the full phase).
    pub fn after(&self) -> Option<&[Value]> {
        self.after.as_ref().map(Image::values)
    }

    /// The row's value of `column`: the new image, else the old one.
    pub fn get(&self, column: &str) -> Option<&Value> {
        let i = self.columns.iter().position(|c| *c == column)?;
        self.after().or_else(|| self.before())?.get(i)
    }
}

/// Calls `f` for every row of an encoded [`RowBatch`](crate::RowBatch), one at a time, and
/// collects its verdicts.
pub fn filter_request(
    request: &[u8],
    f: impl Fn(&RowChange<'_>) -> Verdict,
) -> Result<Vec<Verdict>, postcard::Error> {
    type Head<'a> = ((&'a str, &'a str), Vec<&'a str>);
    let ((_table, columns), rest) = postcard::take_from_bytes::<Head>(request)?;
    let (rows, mut rest) = postcard::take_from_bytes::<usize>(rest)?;
    // A row takes at least three bytes: never reserve more than the request can hold.
    let mut verdicts = Vec::with_capacity(rows.min(rest.len() / 3));
    for _ in 0..rows {
        let (op, r) = postcard::take_from_bytes::<Op>(rest)?;
        let (before, r) = Image::take_option(r)?;
        let (after, r) = Image::take_option(r)?;
        rest = r;
        let row = RowChange {
            op,
            columns: &columns,
            before,
            after,
        };
        verdicts.push(f(&row));
    }
    Ok(verdicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode, RowBatch, TableRef, WireRow};
    use std::cell::RefCell;

    fn batch() -> RowBatch {
        let every = vec![
            Value::Null,
            Value::Int(-7),
            Value::UInt(u64::MAX),
            Value::Float(2.5),
            Value::Decimal("-12.50".into()),
            Value::text("a@b.c"),
            Value::Temporal("2024-02-29 12:34:56".into()),
        ];
        let columns = ["n", "i", "u", "f", "d", "email", "t"];
        let mut other = every.clone();
        other[5] = Value::Bytes(vec![0, 255, 1]);
        RowBatch {
            table: TableRef {
                schema: "s".into(),
                table: "t".into(),
            },
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: vec![
                WireRow {
                    op: Op::Insert,
                    before: None,
                    after: Some(every.clone()),
                },
                WireRow {
                    op: Op::Update,
                    before: Some(every.clone()),
                    after: Some(other),
                },
                WireRow {
                    op: Op::Delete,
                    before: Some(every),
                    after: None,
                },
            ],
        }
    }

    #[test]
    fn rows_read_lazily_equal_the_rows_sent() {
        let sent = batch();
        let seen = RefCell::new(Vec::new());
        let verdicts = filter_request(&encode(&sent), |r| {
            assert_eq!(r.columns(), ["n", "i", "u", "f", "d", "email", "t"]);
            let got = WireRow {
                op: r.op,
                before: r.before().map(<[Value]>::to_vec),
                after: r.after().map(<[Value]>::to_vec),
            };
            seen.borrow_mut().push(got);
            match r.get("email").and_then(Value::as_str) {
                Some("a@b.c") => Verdict::Drop,
                _ => Verdict::Keep,
            }
        })
        .unwrap();
        assert_eq!(seen.into_inner(), sent.rows);
        // Insert: its new image; update: the new image's bytes are no text; delete: the old.
        assert_eq!(verdicts, [Verdict::Drop, Verdict::Keep, Verdict::Drop]);
    }

    #[test]
    fn an_image_is_decoded_only_when_read() {
        let decoded = RefCell::new(Vec::new());
        filter_request(&encode(&batch()), |r| {
            let state = |i: &Option<Image>| i.as_ref().map(|i| i.values.get().is_some());
            let untouched = (state(&r.before), state(&r.after));
            r.get("i");
            decoded.borrow_mut().push((untouched, (state(&r.before), state(&r.after))));
            Verdict::Keep
        })
        .unwrap();
        // `get` decodes the new image, else the old one, and nothing before it is asked.
        let none = (Some(false), Some(false));
        assert_eq!(
            decoded.into_inner(),
            [
                ((None, Some(false)), (None, Some(true))),
                (none, (Some(false), Some(true))),
                ((Some(false), None), (Some(true), None)),
            ]
        );
    }

    #[test]
    fn a_malformed_request_is_refused() {
        let bytes = encode(&batch());
        for cut in [0, 3, bytes.len() / 2, bytes.len() - 1] {
            assert!(filter_request(&bytes[..cut], |_| Verdict::Keep).is_err(), "{cut}");
        }
        let mut bad = bytes.clone();
        let first_row = encode(&(("s", "t"), batch().columns)).len() + 1;
        bad[first_row + 1] = 7; // the first row's `before` is neither None nor Some
        assert!(filter_request(&bad, |_| Verdict::Keep).is_err());
    }
}
