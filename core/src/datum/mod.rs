//! One column value, as read from the source (binary protocol in the full phase, row events in
//! the incremental phase) and written to the target as an exact SQL literal.
//!
//! Why literals and not prepared statements: a multi-row statement is one round trip, its text
//! does not depend on the connection, and every type has a literal that reads back exactly:
//! bytes as hex (no charset conversion), floats in shortest round-trip exponent form, decimals
//! as quoted text, temporal values in UTC.

mod json_diff;

use crate::table::{Column, ColumnKind};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::Value;
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Datum {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Exact decimal text.
    Decimal(String),
    /// Strings, binaries, BIT, JSON text, geometry (internal format).
    Bytes(Vec<u8>),
    /// A date, time or datetime in SQL text form (UTC for TIMESTAMP).
    Temporal(String),
}

fn date_text(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> String {
    if us == 0 {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    } else {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
    }
}

fn time_text(neg: bool, days: u32, h: u8, m: u8, s: u8, us: u32) -> String {
    let hours = days * 24 + h as u32;
    let sign = if neg { "-" } else { "" };
    if us == 0 {
        format!("{sign}{hours:02}:{m:02}:{s:02}")
    } else {
        format!("{sign}{hours:02}:{m:02}:{s:02}.{us:06}")
    }
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A TIMESTAMP from the binlog (seconds since the epoch, UTC) as text; 0 is the zero date.
pub(crate) fn timestamp_text(secs: i64, us: u32) -> String {
    if secs == 0 && us == 0 {
        return "0000-00-00 00:00:00".into();
    }
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    date_text(
        y as u16,
        mo,
        d,
        (sod / 3600) as u8,
        (sod % 3600 / 60) as u8,
        (sod % 60) as u8,
        us,
    )
}

/// The tracked column decides signedness: the binlog's own flag is missing without
/// `binlog_row_metadata=FULL` and cannot be trusted for every width.
fn int_of_width(bits: u64, width: u8, unsigned: bool) -> Datum {
    let shift = 64 - 8 * u32::from(width.min(8));
    if unsigned {
        Datum::UInt((bits << shift) >> shift)
    } else {
        Datum::Int(((bits << shift) as i64) >> shift)
    }
}

/// The text of a MySQL binary JSON value as MySQL prints it: a DECIMAL inside JSON stays a
/// number (converting through serde_json would make it a string), dates and times are
/// strings, other opaque values `base64:type<n>:<data>`, separators `", "` and `": "`.
fn json_text(dom: mysql_common::binlog::jsonb::JsonDom, out: &mut String) {
    use mysql_common::binlog::jsonb::{JsonContainer, JsonDom, JsonNumber, JsonScalar};
    match dom {
        JsonDom::Container(JsonContainer::Array(items)) => {
            out.push('[');
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                json_text(item, out);
            }
            out.push(']');
        }
        JsonDom::Container(JsonContainer::Object(members)) => {
            out.push('{');
            // MySQL keeps (and prints) an object's keys shortest first, then byte by byte.
            let mut members: Vec<(String, JsonDom)> = members.into_iter().collect();
            members.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            for (i, (key, value)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&serde_json::Value::String(key).to_string());
                out.push_str(": ");
                json_text(value, out);
            }
            out.push('}');
        }
        JsonDom::Scalar(JsonScalar::Number(JsonNumber::Decimal(d))) => out.push_str(&d.to_string()),
        JsonDom::Scalar(scalar) => out.push_str(&serde_json::Value::from(scalar).to_string()),
    }
}

impl Datum {
    /// A value read with the binary protocol (full phase).
    pub fn from_value(col: &Column, v: Value) -> Datum {
        match v {
            Value::NULL => Datum::Null,
            Value::Int(i) => match col.kind() {
                ColumnKind::Int(w) => int_of_width(i as u64, w, col.unsigned),
                _ => Datum::Int(i),
            },
            Value::UInt(u) => match col.kind() {
                ColumnKind::Int(w) => int_of_width(u, w, col.unsigned),
                _ => Datum::UInt(u),
            },
            Value::Float(f) => Datum::Float(f),
            Value::Double(d) => Datum::Double(d),
            Value::Bytes(b) => match col.kind() {
                ColumnKind::Decimal => Datum::Decimal(String::from_utf8_lossy(&b).into_owned()),
                _ => Datum::Bytes(b),
            },
            Value::Date(y, mo, d, h, mi, s, us) => match col.kind() {
                ColumnKind::Date => Datum::Temporal(format!("{y:04}-{mo:02}-{d:02}")),
                _ => Datum::Temporal(date_text(y, mo, d, h, mi, s, us)),
            },
            Value::Time(neg, days, h, m, s, us) => {
                Datum::Temporal(time_text(neg, days, h, m, s, us))
            }
        }
    }

    /// A value of an UPDATE's after image: as `from_binlog`, except that a partial JSON update
    /// (a list of changes) is applied to `base`, the column's value in the before image.
    pub fn from_binlog_after(
        col: &Column,
        v: BinlogValue<'_>,
        base: Option<&BinlogValue<'_>>,
    ) -> Result<Datum, String> {
        let BinlogValue::JsonDiff(diffs) = v else {
            return Self::from_binlog(col, v);
        };
        let Some(BinlogValue::Jsonb(doc)) = base else {
            return Err("a partial JSON update (binlog_row_value_options=PARTIAL_JSON) without the document in the before image; set binlog_row_image=FULL on the source".into());
        };
        let mut dom = doc
            .clone()
            .parse()
            .map_err(|e| format!("bad JSON value: {e}"))?;
        for d in &diffs {
            json_diff::apply(&mut dom, d)?;
        }
        let mut text = String::new();
        json_text(dom, &mut text);
        Ok(Datum::Bytes(text.into_bytes()))
    }

    /// A value decoded from a row event, interpreted with the tracked column.
    pub fn from_binlog(col: &Column, v: BinlogValue<'_>) -> Result<Datum, String> {
        let v = match v {
            BinlogValue::Value(v) => v,
            BinlogValue::Jsonb(j) => {
                let dom = j.parse().map_err(|e| format!("bad JSON value: {e}"))?;
                let mut text = String::new();
                json_text(dom, &mut text);
                return Ok(Datum::Bytes(text.into_bytes()));
            }
            BinlogValue::JsonDiff(_) => {
                return Err("a partial JSON update outside an UPDATE's after image".into())
            }
        };
        if v == Value::NULL {
            return Ok(Datum::Null);
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Ok(match (col.kind(), v) {
            (ColumnKind::Year, Value::Bytes(b)) => {
                // The decoder adds 1900 to the stored byte; 0 stands for the year 0000.
                let y: i64 = text(&b).parse().map_err(|_| "bad YEAR value".to_string())?;
                Datum::Int(if y == 1900 { 0 } else { y })
            }
            (ColumnKind::Decimal, Value::Bytes(b)) => Datum::Decimal(text(&b)),
            (ColumnKind::Timestamp, Value::Bytes(b)) => {
                let t = text(&b);
                let (s, us) = t.split_once('.').unwrap_or((&t, "0"));
                let secs: i64 = s.parse().map_err(|_| format!("bad TIMESTAMP `{t}`"))?;
                let us: u32 = format!("{us:0<6}")
                    .parse()
                    .map_err(|_| format!("bad TIMESTAMP `{t}`"))?;
                Datum::Temporal(timestamp_text(secs, us))
            }
            (ColumnKind::Timestamp, Value::Int(secs)) => Datum::Temporal(timestamp_text(secs, 0)),
            (ColumnKind::Enum, Value::Int(i)) => Datum::UInt(i as u64),
            (ColumnKind::Set, Value::Bytes(b)) => {
                let mut mask = 0u64;
                for (i, byte) in b.iter().enumerate().take(8) {
                    mask |= (*byte as u64) << (8 * i);
                }
                Datum::UInt(mask)
            }
            (_, v) => Datum::from_value(col, v),
        })
    }

    /// Appends the SQL literal of the value.
    pub fn write_sql(&self, out: &mut String) {
        match self {
            Datum::Null => out.push_str("NULL"),
            Datum::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Datum::UInt(u) => {
                let _ = write!(out, "{u}");
            }
            Datum::Float(f) => {
                let _ = write!(out, "{f:e}");
            }
            Datum::Double(d) => {
                let _ = write!(out, "{d:e}");
            }
            Datum::Decimal(s) | Datum::Temporal(s) => write_number_text(s, true, out),
            Datum::Bytes(b) => write_hex(b, out),
        }
    }

    /// The literal for a column of `kind`: a JSON document's text is given its character set
    /// (MySQL refuses a binary string as JSON, error 3144).
    pub fn write_sql_for(&self, kind: ColumnKind, out: &mut String) {
        if kind == ColumnKind::Json && matches!(self, Datum::Bytes(_)) {
            out.push_str("CONVERT(");
            self.write_sql(out);
            out.push_str(" USING utf8mb4)");
        } else {
            self.write_sql(out);
        }
    }

    pub fn to_sql(&self) -> String {
        let mut s = String::new();
        self.write_sql(&mut s);
        s
    }

    /// Appends the value as a field of `LOAD DATA ... CHARACTER SET binary FIELDS ESCAPED BY
    /// '\\'` input: `\N` for NULL, bytes with `\`, tab, newline, CR and NUL escaped.
    pub fn write_tsv(&self, out: &mut Vec<u8>) {
        match self {
            Datum::Null => out.extend_from_slice(b"\\N"),
            Datum::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            Datum::UInt(u) => out.extend_from_slice(itoa::Buffer::new().format(*u).as_bytes()),
            Datum::Float(f) => {
                let _ = std::io::Write::write_fmt(out, format_args!("{f:e}"));
            }
            Datum::Double(d) => {
                let _ = std::io::Write::write_fmt(out, format_args!("{d:e}"));
            }
            // Escaped like bytes: a malformed value (from a source or a plugin) cannot shift
            // the fields; the server refuses it (a warning, an error to dm).
            Datum::Decimal(s) | Datum::Temporal(s) => write_tsv_bytes(s.as_bytes(), out),
            Datum::Bytes(b) => write_tsv_bytes(b, out),
        }
    }

    /// About the length of the SQL literal, for sizing statements without writing them.
    pub fn sql_len(&self) -> usize {
        match self {
            Datum::Null => 4,
            Datum::Int(_) | Datum::UInt(_) => 20,
            Datum::Float(_) | Datum::Double(_) => 24,
            Datum::Decimal(s) | Datum::Temporal(s) => s.len() + 2,
            Datum::Bytes(b) => b.len() * 2 + 3,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }
}

/// `X'...'`: any bytes as a literal, whatever the session's sql_mode.
fn write_hex(b: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(b.len() * 2 + 3);
    out.push_str("X'");
    for byte in b {
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 15) as usize] as char);
    }
    out.push('\'');
}

/// The text of a number or a time (`-12.50`, `1e-3`, `2024-05-01 10:00:00.5`) as SQL: as it is
/// (`quoted`: between quotes) when it holds only what such text holds; else a string the server
/// converts or refuses (`CAST(X'...' AS CHAR)`), so that a malformed value from a source, a
/// plugin or a stored chunk bound never becomes SQL of its own.
pub fn write_number_text(s: &str, quoted: bool, out: &mut String) {
    if s.bytes()
        .all(|b| b.is_ascii_digit() || b" .-+:eE".contains(&b))
    {
        if quoted {
            out.push('\'');
        }
        out.push_str(s);
        if quoted {
            out.push('\'');
        }
    } else {
        out.push_str("CAST(");
        write_hex(s.as_bytes(), out);
        out.push_str(" AS CHAR)");
    }
}

/// Bytes as a LOAD DATA field: `\\`, tab, newline, CR and NUL escaped. Most values have none
/// of them, so runs between them are copied whole (this is the full phase's hottest loop).
fn write_tsv_bytes(b: &[u8], out: &mut Vec<u8>) {
    const fn special(c: u8) -> bool {
        matches!(c, b'\\' | b'\t' | b'\n' | b'\r' | 0)
    }
    // No early exit: the compiler vectorizes the scan.
    let escapes = b.iter().fold(0usize, |n, &c| n + special(c) as usize);
    if escapes == 0 {
        out.extend_from_slice(b);
        return;
    }
    // Exactly what it needs: a big value must not double the buffer's capacity.
    out.reserve(b.len() + escapes);
    let mut run = 0;
    for (i, &c) in b.iter().enumerate() {
        if special(c) {
            out.extend_from_slice(&b[run..i]);
            out.extend_from_slice(match c {
                b'\\' => b"\\\\",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                _ => b"\\0",
            });
            run = i + 1;
        }
    }
    out.extend_from_slice(&b[run..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(t: &str, unsigned: bool) -> Column {
        Column {
            name: "c".into(),
            data_type: t.into(),
            unsigned,
            nullable: true,
            generated: false,
            members: vec![],
        }
    }

    #[test]
    fn literals() {
        assert_eq!(Datum::Bytes(vec![0, 0xff, b'a']).to_sql(), "X'00FF61'");
        assert_eq!(Datum::Bytes(vec![]).to_sql(), "X''");
        assert_eq!(Datum::Float(3.4028235e38).to_sql(), "3.4028235e38");
        assert_eq!(Datum::Double(0.1).to_sql(), "1e-1");
        assert_eq!(Datum::Decimal("-1.50".into()).to_sql(), "'-1.50'");
    }

    #[test]
    fn unsigned_from_signed_decoding() {
        let v = BinlogValue::Value(Value::Int(-1));
        assert_eq!(
            Datum::from_binlog(&col("bigint", true), v.clone()).unwrap(),
            Datum::UInt(u64::MAX)
        );
        assert_eq!(
            Datum::from_binlog(&col("tinyint", true), v.clone()).unwrap(),
            Datum::UInt(255)
        );
        assert_eq!(
            Datum::from_binlog(&col("int", false), v).unwrap(),
            Datum::Int(-1)
        );
        // A signed MEDIUMINT decoded as unsigned 24 bits.
        let v = BinlogValue::Value(Value::Int(8_388_608));
        assert_eq!(
            Datum::from_binlog(&col("mediumint", false), v).unwrap(),
            Datum::Int(-8_388_608)
        );
        let v = BinlogValue::Value(Value::UInt(u64::MAX));
        assert_eq!(
            Datum::from_binlog(&col("bigint", false), v).unwrap(),
            Datum::Int(-1)
        );
    }

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(timestamp_text(0, 0), "0000-00-00 00:00:00");
        assert_eq!(timestamp_text(1, 0), "1970-01-01 00:00:01");
        assert_eq!(
            timestamp_text(2_147_483_647, 999_999),
            "2038-01-19 03:14:07.999999"
        );
        assert_eq!(timestamp_text(951_782_400, 0), "2000-02-29 00:00:00");
        let v = BinlogValue::Value(Value::Bytes(b"1700000000.5".to_vec()));
        assert_eq!(
            Datum::from_binlog(&col("timestamp", false), v).unwrap(),
            Datum::Temporal("2023-11-14 22:13:20.500000".into())
        );
    }

    #[test]
    fn year_zero_and_sets() {
        let v = BinlogValue::Value(Value::Bytes(b"1900".to_vec()));
        assert_eq!(
            Datum::from_binlog(&col("year", false), v).unwrap(),
            Datum::Int(0)
        );
        let v = BinlogValue::Value(Value::Bytes(vec![5, 1]));
        assert_eq!(
            Datum::from_binlog(&col("set", false), v).unwrap(),
            Datum::UInt(261)
        );
    }

    #[test]
    fn malformed_decimal_or_time_text_never_becomes_sql_or_fields_of_its_own() {
        for (d, sql) in [
            (Datum::Decimal("-12.50".into()), "'-12.50'"),
            (Datum::Decimal("1e-3".into()), "'1e-3'"),
            (
                Datum::Temporal("2024-05-01 10:00:00.5".into()),
                "'2024-05-01 10:00:00.5'",
            ),
            (Datum::Temporal("-838:59:59".into()), "'-838:59:59'"),
            (
                Datum::Decimal("1'); DROP TABLE t; --".into()),
                "CAST(X'3127293B2044524F50205441424C4520743B202D2D' AS CHAR)",
            ),
            (
                Datum::Temporal("2024\\'".into()),
                "CAST(X'323032345C27' AS CHAR)",
            ),
        ] {
            assert_eq!(d.to_sql(), sql, "{d:?}");
        }
        let mut out = vec![];
        Datum::Decimal("1\t2\n3".into()).write_tsv(&mut out);
        assert_eq!(out, b"1\\t2\\n3");
    }

    #[test]
    fn tsv_escapes_only_what_load_data_reads_specially() {
        let tsv = |b: &[u8]| {
            let mut out = vec![];
            Datum::Bytes(b.to_vec()).write_tsv(&mut out);
            out
        };
        assert_eq!(tsv(b"plain text"), b"plain text");
        assert_eq!(tsv(b""), b"");
        assert_eq!(tsv(b"\\a\tb\nc\rd\0"), b"\\\\a\\tb\\nc\\rd\\0");
        assert_eq!(tsv(b"\t"), b"\\t");
        let mut out = vec![];
        Datum::Int(-42).write_tsv(&mut out);
        Datum::UInt(u64::MAX).write_tsv(&mut out);
        assert_eq!(out, b"-4218446744073709551615");
    }

    #[test]
    fn json_objects_print_their_keys_shortest_first_as_mysql() {
        use mysql_common::binlog::jsonb::{JsonContainer, JsonDom, JsonNumber, JsonScalar};
        let n = |i| JsonDom::Scalar(JsonScalar::Number(JsonNumber::Int(i)));
        let dom = JsonDom::Container(JsonContainer::Object(
            [
                ("b".to_string(), n(1)),
                ("aa".to_string(), n(2)),
                ("c".to_string(), n(3)),
            ]
            .into(),
        ));
        let mut text = String::new();
        json_text(dom, &mut text);
        assert_eq!(text, r#"{"b": 1, "c": 3, "aa": 2}"#);
    }

    #[test]
    fn json_text_is_written_with_its_character_set() {
        let mut out = String::new();
        Datum::Bytes(b"{}".to_vec()).write_sql_for(ColumnKind::Json, &mut out);
        assert_eq!(out, "CONVERT(X'7B7D' USING utf8mb4)");
        out.clear();
        Datum::Bytes(b"{}".to_vec()).write_sql_for(ColumnKind::Bytes, &mut out);
        assert_eq!(out, "X'7B7D'");
    }
}
