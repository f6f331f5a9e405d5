//! The row images of a rows event, each value decoded by mysql_common's value decoder, without
//! its `BinlogRow`: that reads the table map's optional metadata again for every row and
//! builds a `Column` (copies of the schema, table and column names) for every value: without
//! it dm used a quarter to a third less CPU on a backlog of single-row transactions. What is
//! read per table map column (type, metadata, signedness) is read once per event here; the
//! images are the same values (`row_images_are_those_of_mysql_commons_row_decoder` in
//! tests/mysql_binlogs.rs holds them equal on every recorded binlog). A table map is logged
//! again before every transaction's rows and is nearly always the one before: `CodecCache`
//! keeps the codecs of each table id while its table map stays the same.

use super::binlog::RowImage;
use mysql_common::binlog::events::{OptionalMetaExtractor, RowsEventData, TableMapEvent};
use mysql_common::binlog::row::BinlogRowValueOptions;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;
use mysql_common::misc::raw::int::LenEnc;
use mysql_common::misc::raw::RawInt;
use mysql_common::value::Value;
use std::collections::HashMap;
use std::io;

/// A rows event's (before, after) images, in order.
pub type Rows = Vec<(Option<RowImage>, Option<RowImage>)>;

/// How the values of one table map column are decoded.
struct ColumnCodec {
    ty: ColumnType,
    meta: Box<[u8]>,
    unsigned: bool,
}

/// The images of `event`, whose table map is `tme`.
pub fn decode(event: &RowsEventData<'_>, tme: &TableMapEvent<'_>) -> io::Result<Rows> {
    images(event, tme, &codecs(tme)?)
}

/// The codecs of the table maps seen, by table id.
#[derive(Default)]
pub struct CodecCache {
    by_id: HashMap<u64, (TableMapEvent<'static>, Vec<ColumnCodec>)>,
}

impl CodecCache {
    /// Table ids kept at most (a long stream sees many as the source reopens tables).
    const MAX: usize = 4096;

    /// `decode`, with the codecs of `tme` read again only when it differs from the table map
    /// last seen with its table id.
    pub fn decode(
        &mut self,
        event: &RowsEventData<'_>,
        tme: &TableMapEvent<'_>,
    ) -> io::Result<Rows> {
        let id = tme.table_id();
        match self.by_id.get(&id) {
            Some((seen, columns)) if seen == tme => images(event, tme, columns),
            _ => {
                let columns = codecs(tme)?;
                let rows = images(event, tme, &columns)?;
                if self.by_id.len() >= Self::MAX {
                    self.by_id.clear();
                }
                self.by_id.insert(id, (tme.clone().into_owned(), columns));
                Ok(rows)
            }
        }
    }
}

/// The images of `event` decoded with the codecs of its table map `tme`.
fn images(
    event: &RowsEventData<'_>,
    tme: &TableMapEvent<'_>,
    columns: &[ColumnCodec],
) -> io::Result<Rows> {
    // The event's own width, as mysql_common's row decoder reads it.
    let columns = columns
        .get(..event.num_columns() as usize)
        .ok_or_else(|| invalid("No column type"))?;
    let before = event
        .columns_before_image()
        .map(|bits| Present::new(bits.iter().by_vals()));
    let after = event
        .columns_after_image()
        .map(|bits| Present::new(bits.iter().by_vals()));
    // Only MySQL's partial update event has a shared image (WL#2955): its after images
    // start with the options of their JSON values.
    let shared = matches!(event, RowsEventData::PartialUpdateRowsEvent(_));
    let json_columns = tme.json_column_count();
    let mut buf = ParseBuf(event.rows_data());
    let mut rows = Vec::new();
    while !buf.is_empty() {
        let b = match &before {
            Some(p) => Some(image(&mut buf, columns, p, false, json_columns)?),
            None => None,
        };
        let a = match &after {
            Some(p) => Some(image(&mut buf, columns, p, shared, json_columns)?),
            None => None,
        };
        rows.push((b, a));
    }
    Ok(rows)
}

/// The columns an image of the event holds, and how many (its null bitmap has a bit each).
struct Present {
    columns: Vec<bool>,
    count: usize,
}

impl Present {
    fn new(bits: impl Iterator<Item = bool>) -> Present {
        let columns: Vec<bool> = bits.collect();
        let count = columns.iter().filter(|c| **c).count();
        Present { columns, count }
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// The codec of every column of the table map, and its optional metadata checked as
/// mysql_common's row decoder checks it.
fn codecs(tme: &TableMapEvent<'_>) -> io::Result<Vec<ColumnCodec>> {
    let n = tme.columns_count() as usize;
    let meta = OptionalMetaExtractor::new(tme.iter_optional_meta())?;
    let mut signedness = meta.iter_signedness();
    let mut charsets = meta.iter_charset();
    let mut enum_set_charsets = meta.iter_enum_and_set_charset();
    let mut names = meta.iter_column_name();
    for key in meta.iter_primary_key() {
        key?;
    }
    let mut columns = Vec::with_capacity(n);
    for i in 0..n {
        let ty = match tme.get_column_type(i) {
            Ok(Some(ty)) => ty,
            Ok(None) => return Err(invalid("No column type")),
            Err(e) => return Err(invalid(e.to_string())),
        };
        // Malformed metadata fails the event, as it did when mysql_common read every row.
        if ty.is_character_type() {
            charsets.next().transpose()?;
        } else if ty.is_enum_or_set_type() {
            enum_set_charsets.next().transpose()?;
        }
        names.next().transpose()?;
        let unsigned = ty
            .is_numeric_type()
            .then(|| signedness.next())
            .flatten()
            .unwrap_or_default();
        columns.push(ColumnCodec {
            ty,
            meta: tme.get_column_metadata(i).unwrap_or(&[]).into(),
            unsigned,
        });
    }
    Ok(columns)
}

/// Bit `i` of a little-endian bitmap (the order of every bitmap in a rows event).
fn bit(bytes: &[u8], i: usize) -> Option<bool> {
    bytes.get(i / 8).map(|b| b >> (i % 8) & 1 == 1)
}

/// One row image: the values of the columns `present`, in order.
fn image<'a>(
    buf: &mut ParseBuf<'a>,
    columns: &'a [ColumnCodec],
    present: &Present,
    shared: bool,
    json_columns: usize,
) -> io::Result<RowImage> {
    // Which JSON columns (counted over all of them) hold a partial update.
    let mut partial: &[u8] = &[];
    if shared {
        let options = buf.parse::<RawInt<LenEnc>>(())?.0;
        if options & BinlogRowValueOptions::PARTIAL_JSON_UPDATES as u64 != 0 {
            partial = buf.parse(json_columns.div_ceil(8))?;
        }
    }
    let nulls: &[u8] = buf.parse(present.count.div_ceil(8))?;
    let mut values = Vec::with_capacity(present.count);
    let mut json = 0;
    for (c, &here) in columns.iter().zip(&present.columns) {
        let is_partial = c.ty == ColumnType::MYSQL_TYPE_JSON && {
            json += 1;
            json <= json_columns && bit(partial, json - 1).unwrap_or(false)
        };
        if !here {
            continue;
        }
        let value = if bit(nulls, values.len()).unwrap_or(true) {
            BinlogValue::Value(Value::NULL)
        } else {
            buf.parse::<BinlogValue<'a>>((c.ty, &*c.meta, c.unsigned, is_partial))?
                .into_owned()
        };
        values.push(Some(value));
    }
    Ok(values)
}
