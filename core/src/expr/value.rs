//! Values of expression filters and MySQL's rules for comparing and converting them: a
//! temporal column compares with a string by reading the string as a time of its type; ENUM
//! and SET are their names with strings and their numbers with numbers; JSON compares as JSON;
//! anything else with a number compares as a number (a string's numeric prefix, as MySQL reads
//! `'12abc'`), strings as strings.

use crate::datum::Datum;
use crate::table::{Column, ColumnKind};
use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum V {
    Null,
    /// Integers stay exact (BIGINT values do not fit a double).
    Int(i128),
    Num(f64),
    /// A character string: trailing spaces do not count when compared (PAD SPACE).
    Str(Vec<u8>),
    /// A binary string (BINARY, VARBINARY, BLOB): compared byte for byte.
    Bin(Vec<u8>),
    /// A hexadecimal or bit literal (`x'0F'`, `0x0F`, `b'1111'`): a number with numbers, a
    /// binary string with strings.
    Hex(Vec<u8>),
    Time(Temporal),
    /// An ENUM or SET value: its number (index, bits) and its name (`b`, `b,c`).
    Named {
        number: u64,
        name: Vec<u8>,
    },
    Json(serde_json::Value),
}

/// A date, datetime or time as microseconds: since 0000-03-01 for dates and datetimes (so
/// that dates and datetimes compare with each other), signed for times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Temporal {
    pub kind: TemporalKind,
    pub micros: i128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TemporalKind {
    Date,
    DateTime,
    Time,
}

const MICROS_PER_DAY: i128 = 86_400_000_000;

/// Days since 0000-03-01 of a civil date (Howard Hinnant's algorithm, shifted).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe
}

/// The civil date of a day count from `days_from_civil`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl Temporal {
    /// As MySQL writes it: `2021-01-01`, `2021-01-01 12:34:56[.ffffff]`, `-838:59:50`.
    pub(super) fn text(&self) -> String {
        let clock = |us: i128| {
            let (secs, frac) = (us / 1_000_000, us % 1_000_000);
            let hms = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
            if frac == 0 {
                hms
            } else {
                format!("{hms}.{frac:06}")
            }
        };
        match self.kind {
            TemporalKind::Time if self.micros < 0 => format!("-{}", clock(-self.micros)),
            TemporalKind::Time => clock(self.micros),
            kind => {
                let days = self.micros.div_euclid(MICROS_PER_DAY) as i64;
                let (y, m, d) = civil_from_days(days);
                let date = format!("{y:04}-{m:02}-{d:02}");
                match kind {
                    TemporalKind::Date => date,
                    _ => format!("{date} {}", clock(self.micros.rem_euclid(MICROS_PER_DAY))),
                }
            }
        }
    }
}

/// Reads `digits` as an unsigned number (all of it).
fn num(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Fraction digits as microseconds (`5678` -> 567800); more than 6 digits are cut.
fn fraction(s: &str) -> Option<i128> {
    if s.is_empty() {
        return Some(0);
    }
    let digits: String = s.chars().take(6).collect();
    num(&digits)?;
    format!("{digits:0<6}").parse().ok()
}

/// `+08:00`, `-05:30`, `Z` at the end of a datetime: the offset in microseconds.
fn split_offset(s: &str) -> (&str, i128) {
    let s = s.trim_end();
    if let Some(rest) = s.strip_suffix('Z') {
        return (rest, 0);
    }
    if s.len() > 6 {
        let (head, tail) = s.split_at(s.len() - 6);
        let b = tail.as_bytes();
        if (b[0] == b'+' || b[0] == b'-') && b[3] == b':' {
            if let (Some(h), Some(m)) = (num(&tail[1..3]), num(&tail[4..6])) {
                let off = (h as i128 * 60 + m as i128) * 60_000_000;
                return (head.trim_end(), if b[0] == b'-' { -off } else { off });
            }
        }
    }
    (s, 0)
}

/// A date or datetime as MySQL reads it from a string: `2021-01-01`, `2021-01-01
/// 12:34:56.789`, `2021-01-01T12:34:56`, an offset (`+08:00`) converted to UTC, or digits
/// (`20210101`, `20210101123456`).
pub(super) fn parse_datetime(s: &str) -> Option<Temporal> {
    let (s, offset) = split_offset(s.trim());
    let (date, time) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], s[i + 1..].trim_start()),
        None if s.bytes().all(|b| b.is_ascii_digit()) && s.len() >= 8 => {
            let (d, t) = s.split_at(8);
            let t = if t.is_empty() {
                String::new()
            } else {
                format!(
                    "{}:{}:{}",
                    &t[0..2.min(t.len())],
                    t.get(2..4)?,
                    t.get(4..6)?
                )
            };
            let date = format!("{}-{}-{}", &d[0..4], &d[4..6], &d[6..8]);
            return parse_datetime(&format!("{date} {t}")).filter(|_| offset == 0);
        }
        None => (s, ""),
    };
    let mut parts = date.split(['-', '/', '.']);
    let y = num(parts.next()?)? as i64;
    let m = num(parts.next()?)?;
    let d = num(parts.next()?)?;
    if parts.next().is_some() || m > 12 || d > 31 {
        return None;
    }
    // Zero dates (month or day 0) sort before the first day of their month or year.
    let days = days_from_civil(y, m.max(1), d.max(1)) - i64::from(m == 0 || d == 0);
    let (clock, kind) = if time.is_empty() {
        (0, TemporalKind::Date)
    } else {
        let t = parse_clock(time)?;
        if !(0..MICROS_PER_DAY).contains(&t) {
            return None;
        }
        (t, TemporalKind::DateTime)
    };
    Some(Temporal {
        kind: if offset != 0 {
            TemporalKind::DateTime
        } else {
            kind
        },
        micros: days as i128 * MICROS_PER_DAY + clock - offset,
    })
}

/// `HH:MM[:SS[.ffffff]]` (hours may exceed 23) as microseconds.
fn parse_clock(t: &str) -> Option<i128> {
    let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
    let mut it = hms.split(':');
    let h = num(it.next()?)? as i128;
    let m = num(it.next()?)? as i128;
    let s = match it.next() {
        Some(s) => num(s)? as i128,
        None => 0,
    };
    if it.next().is_some() || m > 59 || s > 59 {
        return None;
    }
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + fraction(frac)?)
}

/// A TIME as MySQL reads it: `[-][D ]HHH:MM[:SS[.ffffff]]`, or digits `[-]HHMMSS[.ffffff]`.
pub(super) fn parse_time(s: &str) -> Option<Temporal> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let micros = if let Some((days, clock)) = s.split_once(' ') {
        num(days)? as i128 * MICROS_PER_DAY + parse_clock(clock.trim())?
    } else if s.contains(':') {
        parse_clock(s)?
    } else {
        let (digits, frac) = s.split_once('.').unwrap_or((s, ""));
        num(digits)?;
        let padded = format!("{digits:0>6}");
        let (h, rest) = padded.split_at(padded.len() - 4);
        parse_clock(&format!("{h}:{}:{}.{frac}", &rest[..2], &rest[2..]))?
    };
    Some(Temporal {
        kind: TemporalKind::Time,
        micros: if neg { -micros } else { micros },
    })
}

/// The current time in UTC, as a datetime or a date.
pub(super) fn now(kind: TemporalKind) -> V {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i128)
        .unwrap_or(0);
    let micros = days_from_civil(1970, 1, 1) as i128 * MICROS_PER_DAY + us;
    V::Time(Temporal {
        kind,
        micros: match kind {
            TemporalKind::Date => micros - micros.rem_euclid(MICROS_PER_DAY),
            _ => micros,
        },
    })
}

/// Reads `text` as a temporal value of `kind`.
fn temporal_of(kind: TemporalKind, text: &str) -> Option<Temporal> {
    match kind {
        TemporalKind::Time => parse_time(text),
        _ => parse_datetime(text),
    }
}

/// The longest numeric prefix of a string, as MySQL converts strings to numbers (`'12abc'`
/// is 12, `'abc'` is 0).
fn string_number(s: &[u8]) -> f64 {
    let s = String::from_utf8_lossy(s);
    let t = s.trim_start();
    let b = t.as_bytes();
    let mut end = 0;
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    if end < b.len() && (b[end] == b'+' || b[end] == b'-') {
        end += 1;
    }
    end = digits(end);
    if end < b.len() && b[end] == b'.' {
        end = digits(end + 1);
    }
    if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
        let mut e = end + 1;
        if e < b.len() && (b[e] == b'+' || b[e] == b'-') {
            e += 1;
        }
        if digits(e) > e {
            end = digits(e);
        }
    }
    t[..end].parse().unwrap_or(0.0)
}

fn big_endian(b: &[u8]) -> i128 {
    b.iter()
        .rev()
        .take(16)
        .rev()
        .fold(0i128, |acc, x| (acc << 8) | *x as i128)
}

impl V {
    /// The value in a numeric context; `None` for NULL.
    pub(super) fn number(&self) -> Option<f64> {
        Some(match self {
            V::Null => return None,
            V::Int(i) => *i as f64,
            V::Num(n) => *n,
            V::Str(s) | V::Bin(s) => string_number(s),
            V::Hex(b) => big_endian(b) as f64,
            V::Named { number, .. } => *number as f64,
            // 2021-01-01 12:34:56 is 20210101123456 in a numeric context.
            V::Time(t) => {
                let digits: String = t
                    .text()
                    .chars()
                    .filter(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                let n: f64 = digits.parse().unwrap_or(0.0);
                if t.micros < 0 {
                    -n
                } else {
                    n
                }
            }
            V::Json(j) => match j {
                serde_json::Value::Number(n) => n.as_f64()?,
                serde_json::Value::Bool(b) => f64::from(u8::from(*b)),
                serde_json::Value::String(s) => string_number(s.as_bytes()),
                _ => 0.0,
            },
        })
    }

    /// An exact integer, where the value is one.
    pub(super) fn int(&self) -> Option<i128> {
        match self {
            V::Int(i) => Some(*i),
            V::Hex(b) => Some(big_endian(b)),
            V::Named { number, .. } => Some(*number as i128),
            V::Json(serde_json::Value::Number(n)) => n.as_i64().map(i128::from),
            _ => None,
        }
    }

    /// The value in a string context; `None` for NULL.
    pub(super) fn bytes(&self) -> Option<Vec<u8>> {
        Some(match self {
            V::Null => return None,
            V::Str(s) | V::Bin(s) | V::Hex(s) => s.clone(),
            V::Named { name, .. } => name.clone(),
            V::Int(i) => i.to_string().into_bytes(),
            V::Num(n) => n.to_string().into_bytes(),
            V::Time(t) => t.text().into_bytes(),
            V::Json(serde_json::Value::String(s)) => s.clone().into_bytes(),
            V::Json(j) => j.to_string().into_bytes(),
        })
    }

    pub(super) fn truth(&self) -> Option<bool> {
        self.number().map(|n| n != 0.0)
    }

    fn is_string(&self) -> bool {
        matches!(self, V::Str(_) | V::Bin(_) | V::Hex(_))
    }

    /// The value as JSON (a JSON column's text, or a string holding JSON); `None` when it is
    /// not JSON.
    pub(super) fn json(&self) -> Option<serde_json::Value> {
        match self {
            V::Json(j) => Some(j.clone()),
            V::Str(s) | V::Bin(s) => serde_json::from_slice(s).ok(),
            _ => None,
        }
    }
}

pub(super) fn boolean(b: Option<bool>) -> V {
    match b {
        None => V::Null,
        Some(b) => V::Int(i128::from(b)),
    }
}

/// The value of a column of `col`'s type.
pub(super) fn from_datum(col: &Column, d: &Datum) -> V {
    let kind = col.kind();
    let temporal = |k: TemporalKind, s: &str| temporal_of(k, s).map_or(V::Null, V::Time);
    match (kind, d) {
        (_, Datum::Null) => V::Null,
        (ColumnKind::Date, Datum::Temporal(s)) => temporal(TemporalKind::Date, s),
        (ColumnKind::DateTime | ColumnKind::Timestamp, Datum::Temporal(s)) => {
            temporal(TemporalKind::DateTime, s)
        }
        (ColumnKind::Time, Datum::Temporal(s)) => temporal(TemporalKind::Time, s),
        (ColumnKind::Enum, Datum::UInt(i)) => V::Named {
            number: *i,
            name: col
                .members
                .get((*i as usize).wrapping_sub(1))
                .map(|m| m.as_bytes().to_vec())
                .unwrap_or_default(),
        },
        (ColumnKind::Enum, Datum::Bytes(b)) => V::Named {
            number: col
                .members
                .iter()
                .position(|m| m.as_bytes() == b.as_slice())
                .map_or(0, |i| i as u64 + 1),
            name: b.clone(),
        },
        (ColumnKind::Set, Datum::UInt(mask)) => V::Named {
            number: *mask,
            name: col
                .members
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < 64 && mask & (1 << i) != 0)
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join(",")
                .into_bytes(),
        },
        (ColumnKind::Set, Datum::Bytes(b)) => {
            let text = String::from_utf8_lossy(b);
            let number = text
                .split(',')
                .filter_map(|n| col.members.iter().position(|m| m == n))
                .fold(0u64, |acc, i| acc | (1u64 << i.min(63)));
            V::Named {
                number,
                name: b.clone(),
            }
        }
        (ColumnKind::Bit, Datum::Bytes(b)) => V::Int(big_endian(b)),
        (ColumnKind::Json, Datum::Bytes(b)) => {
            serde_json::from_slice(b).map_or_else(|_| V::Bin(b.clone()), V::Json)
        }
        (_, Datum::Int(i)) => V::Int(*i as i128),
        (_, Datum::UInt(u)) => V::Int(*u as i128),
        (_, Datum::Float(f)) => V::Num(*f as f64),
        (_, Datum::Double(f)) => V::Num(*f),
        (_, Datum::Decimal(s)) => V::Num(s.parse().unwrap_or(0.0)),
        (_, Datum::Temporal(s)) => V::Str(s.as_bytes().to_vec()),
        (_, Datum::Bytes(b)) if is_binary(&col.data_type) => V::Bin(b.clone()),
        (_, Datum::Bytes(b)) => V::Str(character_text(b)),
    }
}

/// Windows-1252 (MySQL's `latin1`) for the bytes 0x80..=0x9F; the rest is ISO-8859-1.
const CP1252_80: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];

/// A character column's value as UTF-8, which expressions are written in. The tracked model
/// does not know column character sets: text that is not UTF-8 is read as `latin1`, the
/// other common single-byte character set (a `latin1` value that happens to be valid UTF-8
/// is rare; other multi-byte character sets compare as their bytes).
fn character_text(b: &[u8]) -> Vec<u8> {
    if std::str::from_utf8(b).is_ok() {
        return b.to_vec();
    }
    b.iter()
        .map(|&x| match x {
            0x80..=0x9F => CP1252_80[(x - 0x80) as usize],
            x => x as char,
        })
        .collect::<String>()
        .into_bytes()
}

fn is_binary(data_type: &str) -> bool {
    matches!(
        data_type,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
    )
}

/// A string without its trailing spaces (PAD SPACE comparison).
fn padded(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|b| *b != b' ').map_or(0, |i| i + 1);
    &s[..end]
}

fn json_cmp(a: &serde_json::Value, b: &serde_json::Value) -> Option<Ordering> {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (J::String(x), J::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (J::Bool(x), J::Bool(y)) => Some(x.cmp(y)),
        (J::Null, J::Null) => Some(Ordering::Equal),
        (x, y) if x == y => Some(Ordering::Equal),
        // Values of different JSON types order by MySQL's type precedence.
        (x, y) => Some(
            json_rank(x)
                .cmp(&json_rank(y))
                .then_with(|| x.to_string().cmp(&y.to_string())),
        ),
    }
}

fn json_rank(v: &serde_json::Value) -> u8 {
    use serde_json::Value as J;
    match v {
        J::Null => 0,
        J::Number(_) => 1,
        J::String(_) => 2,
        J::Object(_) => 3,
        J::Array(_) => 4,
        J::Bool(_) => 5,
    }
}

/// A SQL value as JSON, for comparing it with a JSON value.
fn as_json(v: &V) -> Option<serde_json::Value> {
    Some(match v {
        V::Json(j) => j.clone(),
        V::Int(i) => serde_json::Value::from(i64::try_from(*i).ok()?),
        V::Num(n) => serde_json::Value::from(*n),
        other => serde_json::Value::String(String::from_utf8_lossy(&other.bytes()?).into_owned()),
    })
}

/// MySQL's comparison of two values; `None` when either is NULL.
pub(super) fn compare(a: &V, b: &V) -> Option<Ordering> {
    use V::*;
    match (a, b) {
        (Null, _) | (_, Null) => None,
        (Json(_), _) | (_, Json(_)) => json_cmp(&as_json(a)?, &as_json(b)?),
        (Time(x), Time(y)) => Some(x.micros.cmp(&y.micros)),
        (Time(t), other) => Some(t.micros.cmp(&temporal_like(t.kind, other)?.micros)),
        (other, Time(t)) => Some(temporal_like(t.kind, other)?.micros.cmp(&t.micros)),
        (Named { name, .. }, s) | (s, Named { name, .. }) if s.is_string() => {
            let ord = padded(name).cmp(padded(&s.bytes()?));
            Some(if matches!(a, Named { .. }) {
                ord
            } else {
                ord.reverse()
            })
        }
        (Str(x), Str(y)) => Some(padded(x).cmp(padded(y))),
        (x, y) if x.is_string() && y.is_string() => Some(x.bytes()?.cmp(&y.bytes()?)),
        _ => match (a.int(), b.int()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => a.number()?.partial_cmp(&b.number()?),
        },
    }
}

/// `v` read as a temporal value of `kind` (a string as MySQL reads it, a number as its
/// digits: 20210101).
fn temporal_like(kind: TemporalKind, v: &V) -> Option<Temporal> {
    let text = match v {
        V::Int(i) => i.to_string(),
        V::Num(n) => n.to_string(),
        other => String::from_utf8_lossy(&other.bytes()?).into_owned(),
    };
    temporal_of(kind, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_strings_read_as_mysql_reads_them() {
        let dt = |s| parse_datetime(s).unwrap().micros;
        assert_eq!(
            dt("2021-01-01 12:34:56.789"),
            dt("2021-01-01 12:34:56.789000")
        );
        assert_eq!(
            dt("2021-01-01 12:34:56.5678+08:00"),
            dt("2021-01-01 04:34:56.567800")
        );
        assert_eq!(dt("2021-01-01T00:00:00"), dt("2021-01-01"));
        assert_eq!(dt("20210101"), dt("2021-01-01"));
        assert!(dt("0000-00-00") < dt("0001-01-01"));
        assert!(dt("2020-12-31 23:59:59.999999") < dt("2021-01-01"));
        let t = |s| parse_time(s).unwrap().micros;
        assert_eq!(
            t("-838:58:50.12345"),
            -(((838 * 60 + 58) * 60 + 50) * 1_000_000 + 123_450)
        );
        assert_eq!(t("1 02:00:00"), t("26:00:00"));
        assert_eq!(t("123456"), t("12:34:56"));
        assert!(parse_datetime("not a date").is_none());
        for text in [
            "2021-01-01",
            "2021-01-01 12:34:56.567800",
            "1999-12-31 23:59:59",
        ] {
            assert_eq!(parse_datetime(text).unwrap().text(), text);
        }
        assert_eq!(
            parse_time("-838:58:50.12345").unwrap().text(),
            "-838:58:50.123450"
        );
        let v = V::Time(parse_datetime("2021-01-02 03:04:05").unwrap());
        assert_eq!(v.number(), Some(20210102030405.0));
    }

    #[test]
    fn latin1_text_reads_as_utf8() {
        let latin1 = b"M\xFCller\x85";
        assert_eq!(character_text(latin1), "Müller…".as_bytes());
        assert_eq!(character_text("Müller…".as_bytes()), "Müller…".as_bytes());
    }

    #[test]
    fn strings_read_as_numbers_by_their_prefix() {
        assert_eq!(string_number(b"12abc"), 12.0);
        assert_eq!(string_number(b" -1.5e2x"), -150.0);
        assert_eq!(string_number(b"abc"), 0.0);
    }
}
