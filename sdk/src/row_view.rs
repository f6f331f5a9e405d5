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

/// A LEB128 varint (postcard's integers, lengths and variant indexes) at the start of `bytes`.
fn varint(bytes: &[u8]) -> Taken<'_, u64> {
    let mut n = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((n, &bytes[i + 1..]));
        }
    }
    Err(postcard::Error::DeserializeBadVarint)
}

/// What follows the [`ValueRef`] at the start of `bytes`: the walk over a request, by hand
/// because serde's machinery cost more than the rest of a pass-through call.
fn skip_value(bytes: &[u8]) -> Result<&[u8], postcard::Error> {
    fn skip(rest: &[u8], n: u64) -> Result<&[u8], postcard::Error> {
        let n = usize::try_from(n).map_err(|_| postcard::Error::DeserializeUnexpectedEnd)?;
        rest.get(n..)
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)
    }
    let (tag, rest) = varint(bytes)?;
    match tag {
        0 => Ok(rest),
        1 | 2 => Ok(varint(rest)?.1),
        3 => skip(rest, 8),
        4..=6 => {
            let (len, rest) = varint(rest)?;
            skip(rest, len)
        }
        _ => Err(postcard::Error::DeserializeBadEnum),
    }
}

/// A length-prefixed sequence in the request: walked, not decoded.
struct Seq<'a> {
    len: usize,
    /// Exactly its `len` encoded items.
    bytes: &'a [u8],
}

impl<'a> Seq<'a> {
    /// The sequence at the start of `bytes`, each item ending where `skip` says, and what
    /// follows it.
    fn take(
        bytes: &'a [u8],
        skip: impl Fn(&'a [u8]) -> Result<&'a [u8], postcard::Error>,
    ) -> Taken<'a, Seq<'a>> {
        let (len, start) = postcard::take_from_bytes::<usize>(bytes)?;
        let mut end = start;
        for _ in 0..len {
            end = skip(end)?;
        }
        let bytes = &start[..start.len() - end.len()];
        Ok((Seq { len, bytes }, end))
    }

    /// Its items, decoded as `T` and made into what `into` makes of them.
    fn decode<T: Deserialize<'a>, U>(&self, into: impl Fn(T) -> U) -> Vec<U> {
        let mut rest = self.bytes;
        (0..self.len)
            .map(|_| {
                let (item, r) = postcard::take_from_bytes::<T>(rest)
                    .expect("the host sent a value that is not what its tag says");
                rest = r;
                into(item)
            })
            .collect()
    }
}

/// An image of a row (before or after the change), decoded on first use.
struct Image<'a> {
    seq: Seq<'a>,
    values: OnceCell<Vec<Value>>,
}

impl<'a> Image<'a> {
    /// An `Option<Vec<Value>>` at the start of `bytes`, and what follows it. Every value is
    /// walked (not copied): a request cut short or with an unknown tag is refused here; text
    /// that is not UTF-8 (the host never sends any) traps when the value is read.
    fn take_option(bytes: &'a [u8]) -> Taken<'a, Option<Image<'a>>> {
        match bytes.split_first() {
            Some((0, rest)) => Ok((None, rest)),
            Some((1, rest)) => {
                let (seq, rest) = Seq::take(rest, skip_value)?;
                let values = OnceCell::new();
                Ok((Some(Image { seq, values }), rest))
            }
            Some(_) => Err(postcard::Error::DeserializeBadOption),
            None => Err(postcard::Error::DeserializeUnexpectedEnd),
        }
    }

    fn values(&self) -> &[Value] {
        self.values
            .get_or_init(|| self.seq.decode(|v: ValueRef| Value::from(v)))
    }
}

/// The table's column names, borrowed from the request and listed on first use.
struct Names<'a> {
    seq: Seq<'a>,
    list: OnceCell<Vec<&'a str>>,
}

impl<'a> Names<'a> {
    fn take(bytes: &'a [u8]) -> Taken<'a, Names<'a>> {
        let name = |b: &'a [u8]| Ok(postcard::take_from_bytes::<&str>(b)?.1);
        let (seq, rest) = Seq::take(bytes, name)?;
        let list = OnceCell::new();
        Ok((Names { seq, list }, rest))
    }

    fn list(&self) -> &[&'a str] {
        self.list.get_or_init(|| self.seq.decode(|n: &'a str| n))
    }
}

/// One row change of a table, as a row filter sees it.
pub struct RowChange<'a> {
    pub op: Op,
    columns: &'a Names<'a>,
    before: Option<Image<'a>>,
    after: Option<Image<'a>>,
}

impl RowChange<'_> {
    /// The table's column names, in the order of the images' values.
    pub fn columns(&self) -> &[&str] {
        self.columns.list()
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
        let i = self.columns().iter().position(|c| *c == column)?;
        self.after().or_else(|| self.before())?.get(i)
    }
}

/// Calls `f` for every row of an encoded [`RowBatch`](crate::RowBatch), one at a time, and
/// appends its verdicts to `answer` as an encoded `Vec<Verdict>`.
pub fn filter_request(
    request: &[u8],
    f: impl Fn(&RowChange<'_>) -> Verdict,
    answer: &mut Vec<u8>,
) -> Result<(), postcard::Error> {
    let (_table, rest) = postcard::take_from_bytes::<(&str, &str)>(request)?;
    let (columns, rest) = Names::take(rest)?;
    let (rows, mut rest) = postcard::take_from_bytes::<usize>(rest)?;
    let mut out = postcard::to_extend(&rows, std::mem::take(answer))?;
    // Keep and Drop take a byte each.
    out.reserve(rows.min(rest.len()));
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
        out = postcard::to_extend(&f(&row), out)?;
    }
    *answer = out;
    Ok(())
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
        let mut answer = Vec::new();
        filter_request(
            &encode(&sent),
            |r| {
                assert_eq!(r.columns(), ["n", "i", "u", "f", "d", "email", "t"]);
                let got = WireRow {
                    op: r.op,
                    before: r.before().map(<[Value]>::to_vec),
                    after: r.after().map(<[Value]>::to_vec),
                };
                seen.borrow_mut().push(got);
                match r.get("email").and_then(Value::as_str) {
                    Some("a@b.c") => Verdict::Drop,
                    _ => Verdict::Set(vec![("i".into(), Value::Int(1))]),
                }
            },
            &mut answer,
        )
        .unwrap();
        assert_eq!(seen.into_inner(), sent.rows);
        // Insert: its new image; update: the new image's bytes are no text; delete: the old.
        let set = Verdict::Set(vec![("i".into(), Value::Int(1))]);
        assert_eq!(answer, encode(&vec![Verdict::Drop, set, Verdict::Drop]));
    }

    #[test]
    fn names_and_images_are_decoded_only_when_read() {
        let decoded = RefCell::new(Vec::new());
        let listed = RefCell::new(Vec::new());
        let read = |r: &RowChange| {
            let state = |i: &Option<Image>| i.as_ref().map(|i| i.values.get().is_some());
            listed.borrow_mut().push(r.columns.list.get().is_some());
            let untouched = (state(&r.before), state(&r.after));
            r.get("i");
            decoded
                .borrow_mut()
                .push((untouched, (state(&r.before), state(&r.after))));
            Verdict::Keep
        };
        filter_request(&encode(&batch()), read, &mut Vec::new()).unwrap();
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
        // The names are listed once, by the first `get`.
        assert_eq!(listed.into_inner(), [false, true, true]);
    }

    #[test]
    fn a_malformed_request_is_refused() {
        let bytes = encode(&batch());
        let keep = |_: &RowChange| Verdict::Keep;
        for cut in [0, 3, bytes.len() / 2, bytes.len() - 1] {
            let r = filter_request(&bytes[..cut], keep, &mut Vec::new());
            assert!(r.is_err(), "{cut}");
        }
        let mut bad = bytes.clone();
        let first_row = encode(&(("s", "t"), batch().columns)).len() + 1;
        bad[first_row + 1] = 7; // the first row's `before` is neither None nor Some
        assert!(filter_request(&bad, keep, &mut Vec::new()).is_err());
    }

    #[test]
    fn a_value_is_skipped_where_it_ends() {
        let long = Value::Bytes(vec![7; 300]);
        let values = [
            Value::Int(i64::MIN),
            Value::UInt(u64::MAX),
            Value::Int(0),
            long,
            Value::Decimal("1.5".into()),
        ];
        for v in batch().rows[0]
            .after
            .clone()
            .unwrap()
            .into_iter()
            .chain(values)
        {
            let mut bytes = encode(&v);
            bytes.push(0xee);
            let (_, rest) = postcard::take_from_bytes::<ValueRef>(&bytes).unwrap();
            assert_eq!(skip_value(&bytes).unwrap(), rest, "{v:?}");
            assert!(skip_value(&bytes[..bytes.len() - 2]).is_err(), "{v:?}");
        }
        assert!(skip_value(&[9]).is_err());
    }
}
