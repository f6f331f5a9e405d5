//! Negative TIME(1) and TIME(2) values in row events, decoded right.
//!
//! mysql_common (0.37, and its master as of 2026-12) decodes a negative TIME2 value with one
//! or two fraction digits through an unsigned subtraction (`frac -= 0x100` on a `u32`): a debug
//! build panics, a release build returns a wrong time (`-00:00:00.01` becomes garbage). The
//! other precisions are right. Until it is fixed there, a table with such columns is decoded
//! with a table map in which they read as TIMESTAMP2 without fraction (the same 4 bytes, read
//! big-endian), and the bytes are then decoded here as MySQL's `my_time_packed_from_binary`
//! does.

use mysql_async::binlog::events::TableMapEvent;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::Value;
use mysql_common::binlog::consts::{BinlogVersion, EventType};
use mysql_common::binlog::events::FormatDescriptionEvent;
use mysql_common::binlog::misc::{my_packed_time_make, time_from_packed, TIMEF_INT_OFS};
use mysql_common::binlog::BinlogCtx;
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;
use mysql_common::proto::{MyDeserialize, MySerialize};

/// A table map whose TIME(1)/TIME(2) columns read as raw 4-byte values, and those columns.
pub struct Patched {
    pub tme: TableMapEvent<'static>,
    pub columns: Vec<usize>,
}

fn lenenc_len(n: u64) -> usize {
    match n {
        0..=250 => 1,
        251..=0xFFFF => 3,
        0x1_0000..=0xFF_FFFF => 4,
        _ => 9,
    }
}

/// `None` when the table has no TIME(1)/TIME(2) column (the map is used as it is).
pub fn patch(tme: &TableMapEvent<'_>) -> Result<Option<Patched>, String> {
    let n = tme.columns_count() as usize;
    let columns: Vec<usize> = (0..n)
        .filter(|&i| {
            matches!(
                tme.get_raw_column_type(i),
                Ok(Some(ColumnType::MYSQL_TYPE_TIME2))
            ) && matches!(tme.get_column_metadata(i), Some([1 | 2]))
        })
        .collect();
    if columns.is_empty() {
        return Ok(None);
    }
    let mut buf = Vec::new();
    tme.serialize(&mut buf);
    // table id (6), flags (2), database and table names (length, bytes, NUL), column count.
    let types_at = 6
        + 2
        + 2
        + tme.database_name_raw().len()
        + 2
        + tme.table_name_raw().len()
        + lenenc_len(n as u64);
    let meta_len = (0..n)
        .map(|i| tme.get_column_metadata(i).map_or(0, <[u8]>::len))
        .sum::<usize>();
    let meta_at = types_at + n + lenenc_len(meta_len as u64);
    for &i in &columns {
        let meta_off = meta_at
            + (0..i)
                .map(|j| tme.get_column_metadata(j).map_or(0, <[u8]>::len))
                .sum::<usize>();
        if buf.get(types_at + i) != Some(&(ColumnType::MYSQL_TYPE_TIME2 as u8))
            || !matches!(buf.get(meta_off), Some(1 | 2))
        {
            return Err(format!(
                "table map of {}.{}: unexpected layout",
                tme.database_name(),
                tme.table_name()
            ));
        }
        buf[types_at + i] = ColumnType::MYSQL_TYPE_TIMESTAMP2 as u8;
        buf[meta_off] = 0;
    }
    let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
    let ctx = BinlogCtx::new(buf.len(), &fde, EventType::TABLE_MAP_EVENT as u8);
    let tme = TableMapEvent::deserialize(ctx, &mut ParseBuf(&buf))
        .map_err(|e| format!("table map of a TIME(1)/TIME(2) table: {e}"))?
        .into_owned();
    Ok(Some(Patched { tme, columns }))
}

/// The TIME value of the 4 bytes a patched column was read as (big-endian, given as
/// TIMESTAMP2's text of them as an `i32`).
pub fn decode(v: BinlogValue<'static>) -> Result<BinlogValue<'static>, String> {
    let BinlogValue::Value(Value::Bytes(text)) = v else {
        return Ok(v);
    };
    let raw = std::str::from_utf8(&text)
        .ok()
        .and_then(|t| t.parse::<i32>().ok())
        .ok_or("a TIME value that is not 4 bytes")? as u32;
    let mut intpart = (raw >> 8) as i64 - TIMEF_INT_OFS;
    let mut frac = (raw & 0xFF) as i64;
    // Negative values keep their fraction reversed, for binary sort order.
    if intpart < 0 && frac > 0 {
        intpart += 1;
        frac -= 0x100;
    }
    Ok(BinlogValue::Value(time_from_packed(my_packed_time_make(
        intpart,
        frac * 10_000,
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the disk bytes `int` (3) and `frac` (1), as TIMESTAMP2 reads them.
    fn time(int: u32, frac: u8) -> Value {
        let disk = (int << 8) | u32::from(frac);
        match decode(BinlogValue::Value(Value::Bytes(
            (disk as i32).to_string().into_bytes(),
        )))
        .unwrap()
        {
            BinlogValue::Value(v) => v,
            _ => unreachable!(),
        }
    }

    /// MySQL's table of TIME(2) disk values (sql-common/my_time.cc): 3 bytes of the integer
    /// part, 1 byte of fraction.
    #[test]
    fn disk_values_of_time2_with_two_digits() {
        assert_eq!(time(0x800000, 0x00), Value::Time(false, 0, 0, 0, 0, 0));
        assert_eq!(time(0x7FFFFF, 0xFF), Value::Time(true, 0, 0, 0, 0, 10_000));
        assert_eq!(time(0x7FFFFF, 0x9D), Value::Time(true, 0, 0, 0, 0, 990_000));
        assert_eq!(time(0x7FFFFF, 0x00), Value::Time(true, 0, 0, 0, 1, 0));
        assert_eq!(time(0x7FFFFE, 0xFF), Value::Time(true, 0, 0, 0, 1, 10_000));
        assert_eq!(time(0x7FFFFE, 0xF6), Value::Time(true, 0, 0, 0, 1, 100_000));
        assert_eq!(
            time(0x800001, 0x32),
            Value::Time(false, 0, 0, 0, 1, 500_000)
        );
    }
}
