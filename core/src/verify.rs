//! `dm ctl verify <task>`: compares source and target table by table, in key-range chunks
//! (the full phase's chunk planner): a row count and a 64-bit checksum per chunk on both
//! sides; a chunk that differs is checked again (replication may still be applying it) and,
//! if it still differs, read on both sides and compared row by row. Each difference comes with
//! the statement that makes the target right; `--fix` runs them.
//!
//! Tables merged from several sources (routes with patterns) and tables whose rows a filter or
//! plugin changes are not comparable row for row with one source table: they are listed as
//! skipped, with the reason.

use crate::config::{SourceConfig, TaskConfig};
use crate::datum::Datum;
use crate::error::{DbRole, Error, Result};
use crate::rules::TaskRules;
use crate::schema::{list_tables, load_table};
use crate::snapshot::chunk::{estimated_rows, plan, Bounds, ChunkKey};
use crate::table::{Table, TableName};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Rows per compared chunk.
const CHUNK_ROWS: u64 = 10_000;
/// Differing chunks are checked this many times more before their rows are compared.
const RECHECKS: u32 = 3;
/// Row comparisons after the first one a difference must survive.
const STABLE_CHECKS: u32 = 3;
/// Differences shown per table.
const SHOWN: usize = 20;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableReport {
    pub source: String,
    pub table: String,
    pub target: String,
    pub rows: u64,
    pub chunks: usize,
    pub differing_chunks: usize,
    /// Rows missing, extra or different in the target.
    pub differences: usize,
    /// The first differences, with the statement that fixes each.
    pub diffs: Vec<RowDiff>,
    pub fixed: bool,
    /// Why the table was not compared.
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowDiff {
    pub key: String,
    pub source: Option<String>,
    pub target: Option<String>,
    pub fix: String,
}

pub async fn verify(
    task: &TaskConfig,
    sources: &[SourceConfig],
    fix: bool,
) -> Result<Vec<TableReport>> {
    let mut tgt_conn = Opened::open(&task.target_database, DbRole::Target).await?;
    let mut tgt = tgt_conn.side();
    let mut out = vec![];
    for source in sources {
        let mut src_conn = Opened::open(&source.from, DbRole::Source).await?;
        let mut src = src_conn.side();
        let se = src.err();
        let id = &source.source_id;
        let filter = task.table_filter_of(id);
        let router = task.router_of(id);
        let filtered = !task.plugins_of(id).is_empty()
            || task
                .instance(id)
                .is_some_and(|i| !i.expression_filters.is_empty());
        for name in list_tables(src.conn, &filter).await.map_err(&se)? {
            let Some(table) = load_table(src.conn, &name).await.map_err(&se)? else {
                continue;
            };
            let routed = router.route(&name);
            let target = routed.as_ref().map_or(name.clone(), |r| r.target.clone());
            let mut report = TableReport {
                source: id.clone(),
                table: format!("{}.{}", name.schema, name.table),
                target: format!("{}.{}", target.schema, target.table),
                ..Default::default()
            };
            report.skipped = if routed.as_ref().is_some_and(|r| r.merged) {
                Some("merged from several tables: not comparable with one of them".into())
            } else if filtered {
                Some("rows are filtered or changed by the task's filters/plugins".into())
            } else {
                None
            };
            if report.skipped.is_none() {
                compare(&mut src, &mut tgt, &table, &target, fix, &mut report).await?;
            }
            out.push(report);
        }
    }
    Ok(out)
}

/// The non-generated columns compared, quoted.
fn columns(table: &Table) -> Vec<(usize, String)> {
    table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.generated)
        .map(|(i, c)| (i, crate::db::quote_ident(&c.name)))
        .collect()
}

/// (rows, checksum) of a chunk: XOR of the first 64 bits of each row's MD5.
fn checksum_sql(table: &TableName, cols: &[(usize, String)], range: &str) -> String {
    let fields: Vec<String> = cols
        .iter()
        .map(|(_, c)| format!("IFNULL(CAST({c} AS BINARY), 0x00)"))
        .collect();
    format!(
        "SELECT COUNT(*), COALESCE(BIT_XOR(CAST(CONV(LEFT(MD5(CONCAT_WS(0x1f, {})), 16), 16, 10) AS UNSIGNED)), 0) FROM {} WHERE {range}",
        fields.join(", "),
        table.quoted()
    )
}

async fn checksum(
    conn: &mut Conn,
    sql: &str,
) -> std::result::Result<(u64, u64), mysql_async::Error> {
    Ok(conn.query_first(sql).await?.unwrap_or((0, 0)))
}

/// A database session and how its errors name it.
struct Side<'a> {
    conn: &'a mut Conn,
    role: DbRole,
    addr: String,
}

/// An open session, raw bytes for every column's character set.
struct Opened(Conn, DbRole, String);

impl Side<'_> {
    fn err(&self) -> impl Fn(mysql_async::Error) -> Error {
        let (role, addr) = (self.role, self.addr.clone());
        move |e| Error::db(role, &addr, e)
    }
}

impl Opened {
    async fn open(cfg: &crate::config::DbConfig, role: DbRole) -> Result<Opened> {
        let addr = cfg.addr();
        let conn = crate::db::connect_raw(cfg, role).await?;
        Ok(Opened(conn, role, addr))
    }

    fn side(&mut self) -> Side<'_> {
        Side {
            conn: &mut self.0,
            role: self.1,
            addr: self.2.clone(),
        }
    }
}

async fn compare(
    src: &mut Side<'_>,
    tgt: &mut Side<'_>,
    table: &Table,
    target: &TableName,
    fix: bool,
    report: &mut TableReport,
) -> Result<()> {
    let (se, te) = (src.err(), tgt.err());
    if load_table(tgt.conn, target).await.map_err(&te)?.is_none() {
        report.skipped = Some("the target has no such table".into());
        return Ok(());
    }
    let key = ChunkKey::of(src.conn, table).await.map_err(&se)?;
    let estimate = estimated_rows(src.conn, &table.name).await.map_err(&se)?;
    let bounds: Vec<Bounds> = plan(src.conn, table, key.as_ref(), estimate, CHUNK_ROWS)
        .await
        .map_err(&se)?;
    let cols = columns(table);
    report.chunks = bounds.len();
    let mut differing = vec![];
    for b in &bounds {
        let range = key.as_ref().map_or("1 = 1".to_string(), |k| k.range(b));
        let (rows, d) = range_differs(src, tgt, table, target, &cols, range).await?;
        report.rows += rows;
        differing.extend(d);
    }
    // Replication may still be applying those ranges: checked again after 0.25, 0.5, 1 s
    // (all of the table's differing ranges at once, so the waits do not add up).
    for attempt in 0..RECHECKS {
        if differing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
        let mut still = vec![];
        for range in differing {
            still.extend(
                range_differs(src, tgt, table, target, &cols, range)
                    .await?
                    .1,
            );
        }
        differing = still;
    }
    // Rows still being replicated differ for a while (longer on a busy machine): only
    // differences that stay the same over 0.5, 1 and 2 s count.
    let mut pending = vec![];
    for range in differing {
        let diffs = diff_rows(src, tgt, table, target, &cols, &range).await?;
        pending.push((range, diffs));
    }
    let mut wait = Duration::from_millis(500);
    for _ in 0..STABLE_CHECKS {
        if pending.iter().all(|(_, d)| d.is_empty()) {
            break;
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
        for (range, diffs) in pending.iter_mut().filter(|(_, d)| !d.is_empty()) {
            let again = diff_rows(src, tgt, table, target, &cols, range).await?;
            diffs.retain(|d| {
                again
                    .iter()
                    .any(|a| a.key == d.key && a.source == d.source && a.target == d.target)
            });
        }
    }
    for (_, diffs) in pending {
        if diffs.is_empty() {
            continue;
        }
        report.differing_chunks += 1;
        report.differences += diffs.len();
        if fix {
            tgt.conn
                .query_drop("START TRANSACTION")
                .await
                .map_err(&te)?;
            for d in &diffs {
                tgt.conn.query_drop(d.fix.as_str()).await.map_err(&te)?;
            }
            tgt.conn.query_drop("COMMIT").await.map_err(&te)?;
            report.fixed = true;
        }
        report.diffs.extend(
            diffs
                .into_iter()
                .take(SHOWN.saturating_sub(report.diffs.len())),
        );
    }
    Ok(())
}

/// The source's row count of a range, and the range back when its checksums differ.
async fn range_differs(
    src: &mut Side<'_>,
    tgt: &mut Side<'_>,
    table: &Table,
    target: &TableName,
    cols: &[(usize, String)],
    range: String,
) -> Result<(u64, Option<String>)> {
    let (se, te) = (src.err(), tgt.err());
    let s = checksum(src.conn, &checksum_sql(&table.name, cols, &range))
        .await
        .map_err(se)?;
    let t = checksum(tgt.conn, &checksum_sql(target, cols, &range))
        .await
        .map_err(te)?;
    Ok((s.0, (s != t).then_some(range)))
}

/// The rows of a chunk that differ, keyed by the table's identity key (all columns without).
async fn diff_rows(
    src: &mut Side<'_>,
    tgt: &mut Side<'_>,
    table: &Table,
    target: &TableName,
    cols: &[(usize, String)],
    range: &str,
) -> Result<Vec<RowDiff>> {
    let key: Vec<usize> = table
        .identity_key()
        .unwrap_or_else(|| cols.iter().map(|(i, _)| *i).collect());
    let list: Vec<&str> = cols.iter().map(|(_, c)| c.as_str()).collect();
    let read = |name: &TableName| {
        format!(
            "SELECT {} FROM {} WHERE {range}",
            list.join(", "),
            name.quoted()
        )
    };
    // Where the key's columns are among the compared ones.
    let positions: Vec<usize> = key
        .iter()
        .filter_map(|ki| cols.iter().position(|(ci, _)| ci == ki))
        .collect();
    let by_key = |rows: Vec<Vec<Datum>>| -> BTreeMap<String, Vec<Datum>> {
        rows.into_iter()
            .map(|r| {
                let k = positions
                    .iter()
                    .map(|p| readable(&r[*p]))
                    .collect::<Vec<_>>()
                    .join(", ");
                (k, r)
            })
            .collect()
    };
    let s = by_key(
        read_rows(src.conn, &read(&table.name), table, cols)
            .await
            .map_err(src.err())?,
    );
    let t = by_key(
        read_rows(tgt.conn, &read(target), table, cols)
            .await
            .map_err(tgt.err())?,
    );
    let show = |r: &[Datum]| r.iter().map(readable).collect::<Vec<_>>().join(", ");
    let values = |r: &[Datum]| r.iter().map(sql).collect::<Vec<_>>().join(", ");
    let key_names: Vec<&str> = positions.iter().map(|p| cols[*p].1.as_str()).collect();
    let mut out = vec![];
    for (k, row) in &s {
        if t.get(k) != Some(row) {
            out.push(RowDiff {
                key: k.clone(),
                source: Some(show(row)),
                target: t.get(k).map(|r| show(r)),
                fix: format!(
                    "REPLACE INTO {} ({}) VALUES ({})",
                    target.quoted(),
                    list.join(", "),
                    values(row)
                ),
            });
        }
    }
    for (k, row) in &t {
        if !s.contains_key(k) {
            let cond: Vec<String> = key_names
                .iter()
                .zip(&positions)
                .map(|(n, p)| format!("{n} <=> {}", sql(&row[*p])))
                .collect();
            out.push(RowDiff {
                key: k.clone(),
                source: None,
                target: Some(show(row)),
                fix: format!(
                    "DELETE FROM {} WHERE {} LIMIT 1",
                    target.quoted(),
                    cond.join(" AND ")
                ),
            });
        }
    }
    Ok(out)
}

async fn read_rows(
    conn: &mut Conn,
    sql: &str,
    table: &Table,
    cols: &[(usize, String)],
) -> std::result::Result<Vec<Vec<Datum>>, mysql_async::Error> {
    // Prepared: the binary protocol gives typed values.
    let rows: Vec<mysql_async::Row> = conn.exec(sql, ()).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .zip(cols)
                .map(|(v, (ci, _))| Datum::from_value(&table.columns[*ci], v))
                .collect()
        })
        .collect())
}

/// A value for people: text as text, other bytes in hex.
fn readable(d: &Datum) -> String {
    match d {
        Datum::Bytes(b) => match std::str::from_utf8(b) {
            Ok(t) => format!("'{}'", t.replace('\'', "''")),
            Err(_) => sql(d),
        },
        _ => sql(d),
    }
}

fn sql(d: &Datum) -> String {
    let mut s = String::new();
    d.write_sql(&mut s);
    s
}
