//! Chunks: key ranges of a table, planned once, each read later in a snapshot of its own.
//!
//! A table is chunked by its identity key (primary key, else a non-null unique key) when every
//! key column orders the same in the index as in a comparison with a literal: integers,
//! decimals, temporal types, binary strings, and text compared under the column's own
//! collation (`CONVERT(X'..' USING cs) COLLATE coll`, so the raw bytes need no transcoding).
//! ENUM, SET, BIT, floats and the like are read as one chunk.
//!
//! Composite keys compare as row values, written out as `a > x OR (a = x AND b > y)`, which
//! every server's range optimizer turns into index ranges.

use crate::db::quote_ident;

use crate::datum::Datum;
use crate::table::{ColumnKind, Table, TableName};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

#[derive(Debug, Clone, PartialEq)]
enum KeyKind {
    Int,
    Decimal,
    Temporal,
    Binary,
    Text { charset: String, collation: String },
}

#[derive(Debug, Clone)]
pub struct ChunkKey {
    /// (column index, quoted name, kind)
    cols: Vec<(usize, String, KeyKind)>,
}

/// Lower (exclusive) and upper (inclusive) key bounds; `None` is open.
pub type Bounds = (Option<Vec<Datum>>, Option<Vec<Datum>>);

impl ChunkKey {
    /// The key to chunk `table` by, or `None` when it has none that can be chunked.
    pub async fn of(
        conn: &mut Conn,
        table: &Table,
    ) -> Result<Option<ChunkKey>, mysql_async::Error> {
        let Some(key) = table.identity_key() else {
            return Ok(None);
        };
        type Collation = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);
        // Only text keys need their collation: most keys are integers, and a task over
        // thousands of tables saves a query per table.
        let text_key = key.iter().any(|&i| {
            let c = &table.columns[i];
            matches!(c.kind(), ColumnKind::Bytes) && !is_binary_type(&c.data_type)
        });
        let collations: Vec<Collation> = if text_key {
            conn.exec(
                "SELECT COLUMN_NAME, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&table.name.schema, &table.name.table),
            )
            .await?
        } else {
            vec![]
        };
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut cols = Vec::with_capacity(key.len());
        for i in key {
            let c = &table.columns[i];
            let kind = match c.kind() {
                ColumnKind::Int(_) | ColumnKind::Year => KeyKind::Int,
                ColumnKind::Decimal => KeyKind::Decimal,
                ColumnKind::Date
                | ColumnKind::DateTime
                | ColumnKind::Timestamp
                | ColumnKind::Time => KeyKind::Temporal,
                ColumnKind::Bytes => match c.data_type.as_str() {
                    t if is_binary_type(t) => KeyKind::Binary,
                    "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                        let found = collations
                            .iter()
                            .find(|(n, _, _)| text(n).eq_ignore_ascii_case(&c.name));
                        match found {
                            Some((_, Some(cs), Some(coll))) => KeyKind::Text {
                                charset: text(cs),
                                collation: text(coll),
                            },
                            _ => return Ok(None),
                        }
                    }
                    _ => return Ok(None),
                },
                _ => return Ok(None),
            };
            cols.push((i, quote_ident(&c.name), kind));
        }
        Ok(Some(ChunkKey { cols }))
    }

    fn names(&self) -> String {
        self.cols
            .iter()
            .map(|(_, n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn literal(kind: &KeyKind, d: &Datum, out: &mut String) {
        match (kind, d) {
            (KeyKind::Decimal, Datum::Decimal(s)) => crate::datum::write_number_text(s, false, out),
            (KeyKind::Text { charset, collation }, Datum::Bytes(_)) => {
                out.push_str("CONVERT(");
                d.write_sql(out);
                out.push_str(&format!(" USING {charset}) COLLATE {collation}"));
            }
            _ => d.write_sql(out),
        }
    }

    /// `key <op> value` over all key columns as nested OR/AND; `inclusive` makes it `<op>=`.
    fn compare(&self, op: &str, value: &[Datum], inclusive: bool, out: &mut String) {
        out.push('(');
        let n = self.cols.len();
        for i in 0..n {
            if i > 0 {
                out.push_str(" OR ");
            }
            out.push('(');
            for (j, (_, name, kind)) in self.cols.iter().enumerate().take(i + 1) {
                if j > 0 {
                    out.push_str(" AND ");
                }
                out.push_str(name);
                let this_op = match (j == i, inclusive && i == n - 1) {
                    (false, _) => "=".to_string(),
                    (true, false) => op.to_string(),
                    (true, true) => format!("{op}="),
                };
                out.push(' ');
                out.push_str(&this_op);
                out.push(' ');
                Self::literal(kind, &value[j], out);
            }
            out.push(')');
        }
        out.push(')');
    }

    /// The `WHERE` condition of a chunk (`1 = 1` for an open range).
    pub fn range(&self, (lower, upper): &Bounds) -> String {
        let mut out = String::new();
        if let Some(l) = lower {
            self.compare(">", l, false, &mut out);
        }
        if let Some(u) = upper {
            if !out.is_empty() {
                out.push_str(" AND ");
            }
            self.compare("<", u, true, &mut out);
        }
        if out.is_empty() {
            out.push_str("1 = 1");
        }
        out
    }

    fn decode(&self, table: &Table, row: mysql_async::Row) -> Vec<Datum> {
        row.unwrap()
            .into_iter()
            .zip(&self.cols)
            .map(|(v, (ci, _, _))| Datum::from_value(&table.columns[*ci], v))
            .collect()
    }
}

fn is_binary_type(data_type: &str) -> bool {
    matches!(
        data_type,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
    )
}

/// The server's estimate of a table's rows (0 when it has none).
pub async fn estimated_rows(conn: &mut Conn, name: &TableName) -> Result<u64, mysql_async::Error> {
    let estimate: Option<Option<u64>> = conn
        .exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&name.schema, &name.table),
        )
        .await?;
    Ok(estimate.flatten().unwrap_or(0))
}

/// Cuts of a one-integer-column key evenly between MIN and MAX, with no scan, when the key is
/// dense enough for that: its range at most twice the rows, so that no chunk can hold more
/// than twice its share. `None` for a sparse or skewed key (one outlier at 10^9 among ids
/// 1..500000 would put every row in the first chunk): the index is walked instead.
async fn even_cuts(
    conn: &mut Conn,
    table: &Table,
    ci: usize,
    name: &str,
    estimate: u64,
    n: u64,
) -> Result<Option<Vec<Vec<Datum>>>, mysql_async::Error> {
    let q = table.name.quoted();
    let row: Option<(Option<i128>, Option<i128>)> = conn
        .query_first(format!("SELECT MIN({name}), MAX({name}) FROM {q}"))
        .await?;
    let Some((Some(min), Some(max))) = row else {
        return Ok(Some(Vec::new()));
    };
    if max - min + 1 > 2 * estimate as i128 {
        return Ok(None);
    }
    let unsigned = table.columns[ci].unsigned;
    let mut cuts = Vec::new();
    let mut last = None;
    for i in 1..n as i128 {
        let cut = min + (max - min) * i / n as i128;
        if Some(cut) == last || cut >= max {
            continue;
        }
        last = Some(cut);
        cuts.push(vec![if unsigned {
            Datum::UInt(cut as u64)
        } else {
            Datum::Int(cut as i64)
        }]);
    }
    Ok(Some(cuts))
}

/// Cuts found by walking the index: the key `rows` entries after the previous cut, until the
/// end (at most four times the estimated chunks, should the estimate be far too low).
async fn walk_cuts(
    conn: &mut Conn,
    table: &Table,
    key: &ChunkKey,
    rows: u64,
    n: u64,
) -> Result<Vec<Vec<Datum>>, mysql_async::Error> {
    let q = table.name.quoted();
    let names = key.names();
    let mut cuts: Vec<Vec<Datum>> = Vec::new();
    for _ in 0..n * 4 {
        let cond = cuts
            .last()
            .map(|p| format!("WHERE {}", key.range(&(Some(p.clone()), None))))
            .unwrap_or_default();
        let row: Option<mysql_async::Row> = conn
            .query_first(format!(
                "SELECT {names} FROM {q} {cond} ORDER BY {names} LIMIT 1 OFFSET {}",
                rows - 1
            ))
            .await?;
        let Some(row) = row else { break };
        cuts.push(key.decode(table, row));
    }
    Ok(cuts)
}

/// Splits `table`, of about `estimate` rows, into chunks of about `rows` rows. `conn` must
/// return raw bytes (`character_set_results = binary`).
pub async fn plan(
    conn: &mut Conn,
    table: &Table,
    key: Option<&ChunkKey>,
    estimate: u64,
    rows: u64,
) -> Result<Vec<Bounds>, mysql_async::Error> {
    let whole = vec![(None, None)];
    let Some(key) = key else {
        return Ok(whole);
    };
    let rows = rows.max(1);
    let n = estimate.div_ceil(rows);
    if n <= 1 {
        return Ok(whole);
    }
    let even = match &key.cols[..] {
        [(ci, name, KeyKind::Int)] => even_cuts(conn, table, *ci, name, estimate, n).await?,
        _ => None,
    };
    let cuts = match even {
        Some(cuts) => cuts,
        None => walk_cuts(conn, table, key, rows, n).await?,
    };
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut lower = None;
    for cut in cuts {
        out.push((lower.take(), Some(cut.clone())));
        lower = Some(cut);
    }
    out.push((lower, None));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decimal_bound_that_is_not_a_number_stays_a_string() {
        // Bounds are stored in the target (`<task>_chunk`): what comes back is not trusted.
        let k = ChunkKey {
            cols: vec![(0, "`d`".into(), KeyKind::Decimal)],
        };
        let sql = k.range(&(
            Some(vec![Datum::Decimal("1.5".into())]),
            Some(vec![Datum::Decimal("2) OR (1=1".into())]),
        ));
        assert_eq!(
            sql,
            "((`d` > 1.5)) AND ((`d` <= CAST(X'3229204F522028313D31' AS CHAR)))"
        );
    }

    #[test]
    fn composite_ranges_expand_to_ors() {
        let k = ChunkKey {
            cols: vec![
                (0, "`a`".into(), KeyKind::Int),
                (
                    1,
                    "`b`".into(),
                    KeyKind::Text {
                        charset: "utf8mb4".into(),
                        collation: "utf8mb4_general_ci".into(),
                    },
                ),
            ],
        };
        let v = |a, b: &str| Some(vec![Datum::Int(a), Datum::Bytes(b.as_bytes().to_vec())]);
        assert_eq!(
            k.range(&(v(1, "x"), v(2, "y"))),
            "((`a` > 1) OR (`a` = 1 AND `b` > CONVERT(X'78' USING utf8mb4) COLLATE utf8mb4_general_ci)) \
             AND ((`a` < 2) OR (`a` = 2 AND `b` <= CONVERT(X'79' USING utf8mb4) COLLATE utf8mb4_general_ci))"
        );
        assert_eq!(k.range(&(None, None)), "1 = 1");
    }
}
