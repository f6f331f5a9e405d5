//! Checkpoints in the target's meta schema (`dm_meta` by default), one set of tables per task:
//!
//! - `<task>_checkpoint`: per source, the position the incremental phase resumes from, the
//!   safe-mode exit position, the tables whose snapshot is newer than the position (their
//!   earlier events are skipped) and the tracked schema at the position. The dispatcher writes
//!   it in its own session after every apply worker has committed what it covers (so it never
//!   runs ahead of the data; after a crash the changes since are replayed in safe mode, see
//!   docs/architecture.md, "Checkpoints and the high water").
//! - `<task>_chunk`: per source, table and chunk, the chunk plan (key range) and, once the
//!   chunk's rows are in, the binlog position of its snapshot (its low watermark), written in
//!   the same target transaction as the chunk's rows. A restarted full phase copies only the
//!   chunks not done.
//! - `<task>_load`: per source and table, a finished full-phase table with the lowest and
//!   highest positions of its chunks and its model.
//!
//! - `<task>_dump_files`: per source, each file of a dump directory (`task-mode: load`,
//!   `load&sync`) whose statements are in, recorded in the same target transaction.
//!
//! - `<task>_high_water`: per source and apply worker, the end of the last source transaction
//!   the worker committed changes of, written in the same target transaction as those
//!   changes. After a crash, the safe mode lasts until the stream passes the highest of them.
//!
//! Keeping them in the target (not on a worker's disk) lets any worker resume a task.

pub mod online_ddl;
pub mod tidb_dm;

use crate::db::{quote_ident, quote_str};

use crate::datum::Datum;
use crate::error::{DbRole, Error, Result};
use crate::position::{BinlogPos, Position};
use crate::schema::Tracker;
use crate::table::{Table, TableName};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The resume state of one source of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub position: Position,
    /// Until the stream passes this position, changes are applied idempotently.
    pub safe_mode_exit: Option<BinlogPos>,
    /// Tables snapshotted after `position`: their events before their snapshot are skipped.
    pub table_positions: Vec<(TableName, BinlogPos)>,
    pub tracker: Tracker,
    /// gh-ost/pt-osc runs in progress: the statements waiting for their swap.
    #[serde(default)]
    pub online_ddl: online_ddl::OnlineDdls,
    /// Tables added to the running task whose copy and catch-up run beside this stream
    /// (`sync/join.rs`): their events are skipped here until they join.
    #[serde(default)]
    pub joining: BTreeSet<TableName>,
    /// The newest `resync` order taken (its tables joined `joining` then).
    #[serde(default)]
    pub resync_done: u64,
}

impl Checkpoint {
    /// A stream starting at `position` with the tables of `tracker`: no safe mode, nothing
    /// skipped, nothing joining.
    pub fn at(position: Position, tracker: Tracker) -> Checkpoint {
        Checkpoint {
            position,
            safe_mode_exit: None,
            table_positions: vec![],
            tracker,
            online_ddl: Default::default(),
            joining: Default::default(),
            resync_done: 0,
        }
    }

    /// The incremental phase starts at the oldest chunk snapshot, skips each table's events up to
    /// its own oldest chunk snapshot (every chunk of the table has them) and stays in safe mode
    /// until the newest chunk snapshot of all.
    pub fn after_full(
        tables: Vec<(crate::table::Table, Position, BinlogPos)>,
    ) -> Option<Checkpoint> {
        let start = tables
            .iter()
            .map(|(_, p, _)| p)
            .min_by(|a, b| a.binlog.cmp(&b.binlog))?
            .clone();
        let newest = tables.iter().map(|(_, _, high)| high.clone()).max()?;
        let mut tracker = Tracker::default();
        let mut table_positions = Vec::new();
        for (t, p, _) in tables {
            if p.binlog > start.binlog {
                table_positions.push((t.name.clone(), p.binlog));
            }
            tracker.insert(t);
        }
        Some(Checkpoint {
            safe_mode_exit: Some(newest),
            table_positions,
            ..Checkpoint::at(start, tracker)
        })
    }
}

/// `schema_json`: the tracked schema and, alongside it, the online schema changes waiting
/// for their swap (schema changes of the source not yet in the target).
#[derive(Serialize, Deserialize)]
struct SchemaState<T, O, J> {
    #[serde(flatten)]
    tracker: T,
    #[serde(default)]
    online_ddl: O,
    #[serde(default)]
    joining: J,
    #[serde(default)]
    resync_done: u64,
}

/// What an apply worker recorded with its last transaction (see `high_water_sql`).
#[derive(Debug, Clone)]
pub struct HighWater {
    pub worker: usize,
    pub seq: u64,
    pub at: BinlogPos,
    pub place_index: u64,
}

/// The key of a source's lane (tables joining its running task, `sync/join.rs`) in the meta
/// tables (checkpoint, chunks, high waters).
pub fn lane_id(source_id: &str) -> String {
    format!("{source_id}+join")
}

/// Names of a task's meta tables.
#[derive(Debug, Clone)]
pub struct MetaTables {
    pub schema: String,
    pub checkpoint: String,
    pub load: String,
    pub chunk: String,
    pub high_water: String,
    pub dump_files: String,
    /// The connection holding each of the task's session locks (`session_lock.rs`).
    pub sessions: String,
    /// The meta schema and the task, unquoted.
    names: (String, String),
}

/// A key range of a table's full-phase copy: keys above `lower` up to `upper` (inclusive);
/// `None` is open.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRecord {
    pub table: TableName,
    pub chunk: u32,
    pub lower: Option<Vec<Datum>>,
    pub upper: Option<Vec<Datum>>,
    /// Set when the chunk's rows are in: the position of the snapshot they were read in.
    pub done: Option<Position>,
    pub rows: u64,
    pub bytes: u64,
}

fn json_or_null<T: Serialize>(v: Option<&T>) -> String {
    v.map(|v| quote_str(&serde_json::to_string(v).unwrap_or_default()))
        .unwrap_or_else(|| "NULL".into())
}

impl MetaTables {
    pub fn new(meta_schema: &str, task: &str) -> Self {
        let q = |t: String| format!("{}.{}", quote_ident(meta_schema), quote_ident(&t));
        MetaTables {
            schema: quote_ident(meta_schema),
            checkpoint: q(format!("{task}_checkpoint")),
            load: q(format!("{task}_load")),
            chunk: q(format!("{task}_chunk")),
            high_water: q(format!("{task}_high_water")),
            dump_files: q(format!("{task}_dump_files")),
            sessions: q(format!("{task}_sessions")),
            names: (meta_schema.to_string(), task.to_string()),
        }
    }

    pub async fn create(&self, conn: &mut Conn, addr: &str) -> Result<()> {
        let stmts = [
            format!("CREATE DATABASE IF NOT EXISTS {}", self.schema),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    source_id VARCHAR(128) NOT NULL PRIMARY KEY,
                    binlog_name VARCHAR(255) NOT NULL,
                    binlog_pos BIGINT UNSIGNED NOT NULL,
                    binlog_gtid LONGTEXT NULL,
                    safe_mode_exit_name VARCHAR(255) NULL,
                    safe_mode_exit_pos BIGINT UNSIGNED NULL,
                    table_positions LONGTEXT NOT NULL,
                    schema_json LONGTEXT NOT NULL,
                    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
                ) DEFAULT CHARSET = utf8mb4",
                self.checkpoint
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    source_id VARCHAR(128) NOT NULL,
                    schema_name VARCHAR(128) COLLATE utf8mb4_bin NOT NULL,
                    table_name VARCHAR(128) COLLATE utf8mb4_bin NOT NULL,
                    binlog_name VARCHAR(255) NOT NULL,
                    binlog_pos BIGINT UNSIGNED NOT NULL,
                    binlog_gtid LONGTEXT NULL,
                    row_count BIGINT UNSIGNED NOT NULL,
                    max_binlog_name VARCHAR(255) NOT NULL,
                    max_binlog_pos BIGINT UNSIGNED NOT NULL,
                    table_json LONGTEXT NOT NULL,
                    finished_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                    PRIMARY KEY (source_id, schema_name, table_name)
                ) DEFAULT CHARSET = utf8mb4",
                self.load
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    source_id VARCHAR(128) NOT NULL,
                    schema_name VARCHAR(128) COLLATE utf8mb4_bin NOT NULL,
                    table_name VARCHAR(128) COLLATE utf8mb4_bin NOT NULL,
                    chunk INT UNSIGNED NOT NULL,
                    lower_key LONGTEXT NULL,
                    upper_key LONGTEXT NULL,
                    binlog_name VARCHAR(255) NULL,
                    binlog_pos BIGINT UNSIGNED NULL,
                    binlog_gtid LONGTEXT NULL,
                    row_count BIGINT UNSIGNED NOT NULL DEFAULT 0,
                    byte_count BIGINT UNSIGNED NOT NULL DEFAULT 0,
                    finished_at TIMESTAMP(6) NULL,
                    PRIMARY KEY (source_id, schema_name, table_name, chunk)
                ) DEFAULT CHARSET = utf8mb4",
                self.chunk
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    source_id VARCHAR(128) NOT NULL,
                    worker INT UNSIGNED NOT NULL,
                    seq BIGINT UNSIGNED NOT NULL,
                    binlog_name VARCHAR(255) NOT NULL,
                    binlog_pos BIGINT UNSIGNED NOT NULL,
                    place_index BIGINT UNSIGNED NOT NULL DEFAULT 0,
                    PRIMARY KEY (source_id, worker)
                ) DEFAULT CHARSET = utf8mb4",
                self.high_water
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    source_id VARCHAR(128) NOT NULL,
                    file_name VARCHAR(512) COLLATE utf8mb4_bin NOT NULL,
                    finished_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                    PRIMARY KEY (source_id, file_name)
                ) DEFAULT CHARSET = utf8mb4",
                self.dump_files
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    lock_name VARCHAR(64) NOT NULL PRIMARY KEY,
                    connection_id BIGINT UNSIGNED NOT NULL,
                    taken_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
                ) DEFAULT CHARSET = utf8mb4",
                self.sessions
            ),
        ];
        for s in stmts {
            conn.query_drop(s)
                .await
                .map_err(|e| Error::db(DbRole::Target, addr, e))?;
        }
        self.names_compare_exactly(conn, addr).await?;
        self.high_water_places(conn, addr).await
    }

    /// `place_index` (see `high_water_sql`) is added to a high-water table made by an earlier
    /// version.
    async fn high_water_places(&self, conn: &mut Conn, addr: &str) -> Result<()> {
        let err = |e| Error::db(DbRole::Target, addr, e);
        let (schema, task) = &self.names;
        let has: Option<u8> = conn
            .exec_first(
                "SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 AND COLUMN_NAME = 'place_index'",
                (schema, format!("{task}_high_water")),
            )
            .await
            .map_err(err)?;
        if has.is_none() {
            conn.query_drop(format!(
                "ALTER TABLE {} ADD COLUMN place_index BIGINT UNSIGNED NOT NULL DEFAULT 0",
                self.high_water
            ))
            .await
            .map_err(err)?;
        }
        Ok(())
    }

    /// Schema and table names are keys here, compared byte for byte: a source may hold
    /// `Shop.t` and `shop.t` (MariaDB and MySQL on Linux tell them apart). Tables made by
    /// earlier versions, with case-insensitive keys, are changed once.
    async fn names_compare_exactly(&self, conn: &mut Conn, addr: &str) -> Result<()> {
        let err = |e| Error::db(DbRole::Target, addr, e);
        let (schema, task) = &self.names;
        for (table, suffix) in [(&self.load, "load"), (&self.chunk, "chunk")] {
            let name = format!("{task}_{suffix}");
            let loose: Option<u8> = conn
                .exec_first(
                    "SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                     AND COLUMN_NAME = 'schema_name' AND COLLATION_NAME <> 'utf8mb4_bin'",
                    (schema, &name),
                )
                .await
                .map_err(err)?;
            if loose.is_some() {
                conn.query_drop(format!(
                    "ALTER TABLE {table} MODIFY schema_name VARCHAR(128) COLLATE utf8mb4_bin NOT NULL, \
                     MODIFY table_name VARCHAR(128) COLLATE utf8mb4_bin NOT NULL"
                ))
                .await
                .map_err(err)?;
            }
        }
        Ok(())
    }

    pub async fn load_checkpoint(
        &self,
        conn: &mut Conn,
        addr: &str,
        source_id: &str,
    ) -> Result<Option<Checkpoint>> {
        type Row = (
            String,
            u64,
            Option<String>,
            Option<String>,
            Option<u64>,
            String,
            String,
        );
        let row: Option<Row> = conn
            .exec_first(
                format!(
                    "SELECT binlog_name, binlog_pos, binlog_gtid, safe_mode_exit_name, safe_mode_exit_pos, \
                     table_positions, schema_json FROM {} WHERE source_id = ?",
                    self.checkpoint
                ),
                (source_id,),
            )
            .await
            .map_err(|e| Error::db(DbRole::Target, addr, e))?;
        let Some((name, pos, gtid, exit_name, exit_pos, tables, schema)) = row else {
            return Ok(None);
        };
        let bad = |what: &str, e: serde_json::Error| {
            Error::Meta(format!(
                "{}: bad {what} for source {source_id}: {e}",
                self.checkpoint
            ))
        };
        let state: SchemaState<Tracker, online_ddl::OnlineDdls, BTreeSet<TableName>> =
            serde_json::from_str(&schema).map_err(|e| bad("schema_json", e))?;
        Ok(Some(Checkpoint {
            position: Position {
                binlog: BinlogPos { name, pos },
                gtid: gtid
                    .map(|g| serde_json::from_str(&g))
                    .transpose()
                    .map_err(|e| bad("binlog_gtid", e))?,
            },
            safe_mode_exit: exit_name
                .zip(exit_pos)
                .map(|(name, pos)| BinlogPos { name, pos }),
            table_positions: serde_json::from_str(&tables)
                .map_err(|e| bad("table_positions", e))?,
            tracker: state.tracker,
            online_ddl: state.online_ddl,
            joining: state.joining,
            resync_done: state.resync_done,
        }))
    }

    /// Records `cp` of `source_id` with its tracked schema, on its own (a stream's start).
    pub async fn save_checkpoint(
        &self,
        conn: &mut Conn,
        addr: &str,
        source_id: &str,
        cp: &Checkpoint,
    ) -> Result<()> {
        conn.query_drop(self.save_checkpoint_sql(source_id, cp, true))
            .await
            .map_err(|e| Error::db(DbRole::Target, addr, e))
    }

    /// The statement that records `cp`; run it inside the transaction that applied the
    /// changes up to `cp.position`. The tracked schema is written only when `with_schema`.
    pub fn save_checkpoint_sql(
        &self,
        source_id: &str,
        cp: &Checkpoint,
        with_schema: bool,
    ) -> String {
        let gtid = json_or_null(cp.position.gtid.as_ref());
        let (exit_name, exit_pos) = match &cp.safe_mode_exit {
            Some(p) => (quote_str(&p.name), p.pos.to_string()),
            None => ("NULL".into(), "NULL".into()),
        };
        let tables = quote_str(&serde_json::to_string(&cp.table_positions).unwrap_or_default());
        let state = SchemaState {
            tracker: &cp.tracker,
            online_ddl: &cp.online_ddl,
            joining: &cp.joining,
            resync_done: cp.resync_done,
        };
        let schema = quote_str(&serde_json::to_string(&state).unwrap_or_default());
        let schema_update = if with_schema {
            ", schema_json = VALUES(schema_json)"
        } else {
            ""
        };
        format!(
            "INSERT INTO {} (source_id, binlog_name, binlog_pos, binlog_gtid, safe_mode_exit_name, \
             safe_mode_exit_pos, table_positions, schema_json) VALUES ({}, {}, {}, {gtid}, {exit_name}, {exit_pos}, {tables}, {schema}) \
             ON DUPLICATE KEY UPDATE binlog_name = VALUES(binlog_name), binlog_pos = VALUES(binlog_pos), \
             binlog_gtid = VALUES(binlog_gtid), safe_mode_exit_name = VALUES(safe_mode_exit_name), \
             safe_mode_exit_pos = VALUES(safe_mode_exit_pos), table_positions = VALUES(table_positions){schema_update}",
            self.checkpoint,
            quote_str(source_id),
            quote_str(&cp.position.binlog.name),
            cp.position.binlog.pos,
        )
    }

    /// The statement that records the high water of one apply worker; run it inside the
    /// transaction that applies the changes. `seq` tells a committed transaction from a lost one.
    /// `place_index`: of the worker that applies linked tables (`sync/linked.rs`), how many of
    /// the linked changes at position `at` are applied (0 for the others).
    pub fn high_water_sql(
        &self,
        source_id: &str,
        worker: usize,
        seq: u64,
        at: &BinlogPos,
        place_index: u64,
    ) -> String {
        format!(
            "INSERT INTO {} (source_id, worker, seq, binlog_name, binlog_pos, place_index) VALUES ({}, {worker}, {seq}, {}, {}, {place_index}) \
             ON DUPLICATE KEY UPDATE seq = VALUES(seq), binlog_name = VALUES(binlog_name), binlog_pos = VALUES(binlog_pos), \
             place_index = VALUES(place_index)",
            self.high_water,
            quote_str(source_id),
            quote_str(&at.name),
            at.pos,
        )
    }

    /// Every apply worker that ever committed for the source.
    pub async fn high_waters(
        &self,
        conn: &mut Conn,
        addr: &str,
        source_id: &str,
    ) -> Result<Vec<HighWater>> {
        let rows: Vec<(u64, u64, String, u64, u64)> = conn
            .exec(
                format!(
                    "SELECT worker, seq, binlog_name, binlog_pos, place_index FROM {} WHERE source_id = ?",
                    self.high_water
                ),
                (source_id,),
            )
            .await
            .map_err(|e| Error::db(DbRole::Target, addr, e))?;
        Ok(rows
            .into_iter()
            .map(|(w, seq, name, pos, place_index)| HighWater {
                worker: w as usize,
                seq,
                at: BinlogPos { name, pos },
                place_index,
            })
            .collect())
    }

    /// Tables of the source whose full-phase copy is finished, with the lowest and highest
    /// positions of their chunks' snapshots.
    pub async fn loaded_tables(
        &self,
        conn: &mut Conn,
        addr: &str,
        source_id: &str,
    ) -> Result<Vec<(Table, Position, BinlogPos)>> {
        type Row = (String, u64, Option<String>, String, u64, String);
        let rows: Vec<Row> = conn
            .exec(
                format!(
                    "SELECT binlog_name, binlog_pos, binlog_gtid, max_binlog_name, max_binlog_pos, table_json \
                     FROM {} WHERE source_id = ?",
                    self.load
                ),
                (source_id,),
            )
            .await
            .map_err(|e| Error::db(DbRole::Target, addr, e))?;
        rows.into_iter()
            .map(|(name, pos, gtid, max_name, max_pos, json)| {
                let table: Table = serde_json::from_str(&json)
                    .map_err(|e| Error::Meta(format!("{}: bad table_json: {e}", self.load)))?;
                let gtid = gtid.and_then(|g| serde_json::from_str(&g).ok());
                Ok((
                    table,
                    Position {
                        binlog: BinlogPos { name, pos },
                        gtid,
                    },
                    BinlogPos {
                        name: max_name,
                        pos: max_pos,
                    },
                ))
            })
            .collect()
    }

    /// Records a table whose chunks are all done.
    pub fn table_loaded_sql(
        &self,
        source_id: &str,
        table: &Table,
        low: &Position,
        high: &BinlogPos,
        rows: u64,
    ) -> String {
        format!(
            "REPLACE INTO {} (source_id, schema_name, table_name, binlog_name, binlog_pos, binlog_gtid, row_count, \
             max_binlog_name, max_binlog_pos, table_json) VALUES ({}, {}, {}, {}, {}, {}, {rows}, {}, {}, {})",
            self.load,
            quote_str(source_id),
            quote_str(&table.name.schema),
            quote_str(&table.name.table),
            quote_str(&low.binlog.name),
            low.binlog.pos,
            json_or_null(low.gtid.as_ref()),
            quote_str(&high.name),
            high.pos,
            quote_str(&serde_json::to_string(table).unwrap_or_default()),
        )
    }

    /// Records the chunk plan of a table (no chunk done yet).
    pub fn save_plan_sql(&self, source_id: &str, chunks: &[ChunkRecord]) -> String {
        let values: Vec<String> = chunks
            .iter()
            .map(|c| {
                format!(
                    "({}, {}, {}, {}, {}, {})",
                    quote_str(source_id),
                    quote_str(&c.table.schema),
                    quote_str(&c.table.table),
                    c.chunk,
                    json_or_null(c.lower.as_ref()),
                    json_or_null(c.upper.as_ref()),
                )
            })
            .collect();
        format!(
            "INSERT INTO {} (source_id, schema_name, table_name, chunk, lower_key, upper_key) VALUES {}",
            self.chunk,
            values.join(", ")
        )
    }

    /// Marks a chunk done; run it in the transaction that wrote the chunk's rows.
    pub fn chunk_done_sql(&self, source_id: &str, c: &ChunkRecord, at: &Position) -> String {
        format!(
            "UPDATE {} SET binlog_name = {}, binlog_pos = {}, binlog_gtid = {}, row_count = {}, byte_count = {}, \
             finished_at = CURRENT_TIMESTAMP(6) WHERE source_id = {} AND schema_name = {} AND table_name = {} AND chunk = {}",
            self.chunk,
            quote_str(&at.binlog.name),
            at.binlog.pos,
            json_or_null(at.gtid.as_ref()),
            c.rows,
            c.bytes,
            quote_str(source_id),
            quote_str(&c.table.schema),
            quote_str(&c.table.table),
            c.chunk,
        )
    }

    /// The chunk records of the source's tables, or of one table only (a lookup by primary
    /// key: a table's last chunk must not read the records of thousands of other tables).
    pub async fn chunks(
        &self,
        conn: &mut Conn,
        addr: &str,
        source_id: &str,
        table: Option<&TableName>,
    ) -> Result<Vec<ChunkRecord>> {
        type Row = (
            String,
            String,
            u32,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<u64>,
            Option<String>,
            u64,
            u64,
        );
        let select = format!(
            "SELECT schema_name, table_name, chunk, lower_key, upper_key, binlog_name, binlog_pos, \
             binlog_gtid, row_count, byte_count FROM {} WHERE source_id = ?",
            self.chunk
        );
        let order = "ORDER BY schema_name, table_name, chunk";
        let rows: Result<Vec<Row>, _> = match table {
            None => conn.exec(format!("{select} {order}"), (source_id,)).await,
            Some(t) => {
                conn.exec(
                    format!("{select} AND schema_name = ? AND table_name = ? {order}"),
                    (source_id, &t.schema, &t.table),
                )
                .await
            }
        };
        let rows = rows.map_err(|e| Error::db(DbRole::Target, addr, e))?;
        let bad = |e: serde_json::Error| Error::Meta(format!("{}: bad key: {e}", self.chunk));
        rows.into_iter()
            .map(
                |(schema, table, chunk, lower, upper, name, pos, gtid, rows, bytes)| {
                    let key = |k: Option<String>| -> Result<Option<Vec<Datum>>> {
                        k.map(|k| serde_json::from_str(&k).map_err(bad)).transpose()
                    };
                    Ok(ChunkRecord {
                        table: TableName::new(schema, table),
                        chunk,
                        lower: key(lower)?,
                        upper: key(upper)?,
                        done: name.zip(pos).map(|(name, pos)| Position {
                            binlog: BinlogPos { name, pos },
                            gtid: gtid.and_then(|g| serde_json::from_str(&g).ok()),
                        }),
                        rows,
                        bytes,
                    })
                },
            )
            .collect()
    }

    /// Forgets a table's plan and load record (its copy starts over).
    pub async fn forget_table(
        &self,
        conn: &mut Conn,
        addr: &str,
        source_id: &str,
        table: &TableName,
    ) -> Result<()> {
        for t in [&self.chunk, &self.load] {
            conn.exec_drop(
                format!(
                    "DELETE FROM {t} WHERE source_id = ? AND schema_name = ? AND table_name = ?"
                ),
                (source_id, &table.schema, &table.table),
            )
            .await
            .map_err(|e| Error::db(DbRole::Target, addr, e))?;
        }
        Ok(())
    }

    /// The oldest source binlog position a restart of a source's subtask reads again, with
    /// its GTID set: of the subtask and of the tables joining it (`lane_id`), each one's
    /// checkpoint or, before it has one (a full phase under way), the oldest snapshot of its
    /// chunks copied so far. `None`: none yet.
    pub async fn needed_binlog(
        &self,
        conn: &mut Conn,
        addr: &str,
        source_id: &str,
    ) -> Result<Option<Position>> {
        type Row = (String, u64, Option<String>);
        let err = |e| Error::db(DbRole::Target, addr, e);
        let mut oldest: Option<Position> = None;
        for id in [source_id.to_string(), lane_id(source_id)] {
            let checkpoint: Option<Row> = conn
                .exec_first(
                    format!(
                        "SELECT binlog_name, binlog_pos, binlog_gtid FROM {} WHERE source_id = ?",
                        self.checkpoint
                    ),
                    (&id,),
                )
                .await
                .map_err(err)?;
            let at: Option<Row> = match checkpoint {
                Some(at) => Some(at),
                // The oldest: binlog names of one server differ only in their number, which
                // sorts as text once the lengths agree.
                None => conn
                    .exec_first(
                        format!(
                            "SELECT binlog_name, binlog_pos, binlog_gtid FROM {} \
                             WHERE source_id = ? AND binlog_name IS NOT NULL \
                             ORDER BY LENGTH(binlog_name), binlog_name, binlog_pos LIMIT 1",
                            self.chunk
                        ),
                        (&id,),
                    )
                    .await
                    .map_err(err)?,
            };
            if let Some((name, pos, gtid)) = at {
                let at = BinlogPos { name, pos };
                if oldest.as_ref().is_none_or(|o| at < o.binlog) {
                    oldest = Some(Position {
                        binlog: at,
                        gtid: gtid.and_then(|g| serde_json::from_str(&g).ok()),
                    });
                }
            }
        }
        Ok(oldest)
    }

    /// Forgets everything of a source (start-task --remove-meta).
    pub async fn remove(&self, conn: &mut Conn, addr: &str, source_id: &str) -> Result<()> {
        for t in [
            &self.checkpoint,
            &self.load,
            &self.chunk,
            &self.high_water,
            &self.dump_files,
        ] {
            conn.exec_drop(format!("DELETE FROM {t} WHERE source_id = ?"), (source_id,))
                .await
                .map_err(|e| Error::db(DbRole::Target, addr, e))?;
        }
        Ok(())
    }
}
