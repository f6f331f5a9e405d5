//! TiDB DM's `task-mode: dump`: the selected tables of a source written as a dump directory in
//! mydumper's layout (`layout.rs`), which `task-mode: load`, myloader and TiDB DM's loader
//! import.
//!
//! Consistency. By default (`consistency: auto`, `flush`, `lock`) every reader session starts
//! its snapshot under one short `FLUSH TABLES WITH READ LOCK`, as mydumper and dumpling do: the
//! whole dump is the source at one binlog position, written to `metadata`. Without a lock
//! (`snapshot` on MariaDB: each session's own snapshot position; `none`: the position read just
//! before each snapshot, and another after each table) tables are read at different positions:
//! each table is still one snapshot, and `metadata` gets the lowest position plus dm's
//! "safe mode until" section with the highest, so replicating from the dump (dm's `load&sync`)
//! replays the difference in safe mode and converges, as the full phase's chunks do.
//!
//! Resumption. A table's files are recorded in the journal (`dm-dump.json`) once all are
//! written and synced; a restarted dump removes the files of tables it had not finished and
//! reads those in new snapshots (so a resumed dump is one of "different positions").
//! `metadata` is written last; a loader refuses a dm dump whose journal is not finished.

pub mod layout;

use crate::config::{Consistency, DumperConfig, Flavor, SourceConfig};
use crate::datum::Datum;
use crate::db::quote_ident;
use crate::error::{errno, DbRole, Error, Result};
use crate::fence::Fence;
use crate::position::{BinlogPos, Position};
use crate::rules::TableFilter;
use crate::schema::{list_schemas, list_tables, load_table};
use crate::status::{Progress, TableProgress};
use crate::table::TableName;
use layout::{file_part, Journal, TableDone};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// An INSERT statement of a data file holds rows up to about this size (dumpling's default
/// `statement-size`).
const STATEMENT_BYTES: usize = 1_000_000;
/// A snapshot older than an ALTER cannot read the table: a new snapshot is tried this often.
const ATTEMPTS: usize = 3;
/// Every data file begins so: its values are raw bytes or ASCII, TIMESTAMPs are UTC, a 0 in an
/// AUTO_INCREMENT column stays 0.
const DATA_HEADER: &str = "/*!40101 SET NAMES binary*/;\n/*!40014 SET FOREIGN_KEY_CHECKS=0*/;\n\
     /*!40103 SET TIME_ZONE='+00:00' */;\n/*!40101 SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO'*/;\n";

pub struct DumpPhase {
    pub task: String,
    pub source: SourceConfig,
    pub flavor: Flavor,
    /// The dump directory (`loaders.<name>.dir` of the source's instance).
    pub dir: PathBuf,
    pub filter: TableFilter,
    pub dumper: DumperConfig,
    pub progress: Arc<Progress>,
    pub fence: Fence,
}

/// How the reader sessions' snapshots are tied to binlog positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Snapshots {
    /// All sessions start under one short global read lock: one position for the whole dump.
    Locked,
    /// Each session's own snapshot position: MariaDB's, without a lock (MySQL's needs one,
    /// per session).
    Own,
    /// No lock and no exact position: the position read just before each snapshot, and the
    /// one read after each table.
    Bracketed,
}

impl Snapshots {
    fn of(c: Consistency, flavor: Flavor) -> Self {
        match (c, flavor) {
            (Consistency::None, _) | (Consistency::Snapshot, Flavor::Mysql) => Snapshots::Bracketed,
            (Consistency::Snapshot, Flavor::Mariadb) => Snapshots::Own,
            (Consistency::Auto | Consistency::Flush | Consistency::Lock, _) => Snapshots::Locked,
        }
    }
}

/// A reader session inside its snapshot, and the snapshot's position.
struct Reader {
    conn: Conn,
    at: Position,
}

impl DumpPhase {
    fn src_err(&self) -> impl Fn(mysql_async::Error) -> Error + '_ {
        |e| Error::db(DbRole::Source, &self.source.from.addr(), e)
    }

    fn io_err(&self, what: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
        let what = what.display().to_string();
        move |e| Error::Invalid(format!("cannot write the dump file {what}: {e}"))
    }

    /// Writes every selected table not written yet, then `metadata`.
    pub async fn run(&self) -> Result<()> {
        let mut journal = self.open_journal()?;
        if journal.finished {
            tracing::info!(task = %self.task, source = %self.source.source_id, dir = %self.dir.display(), "the dump is finished already");
            return Ok(());
        }
        let mut src = self.reader_session().await?;
        self.write_databases(&mut src).await?;
        let tables = list_tables(&mut src, &self.filter)
            .await
            .map_err(self.src_err())?;
        self.warn_about_views(&mut src).await?;
        self.remove_unfinished(&journal)?;
        let mut todo = Vec::new();
        for t in &tables {
            if journal.tables.contains_key(&t.to_string()) {
                continue;
            }
            let estimate = crate::snapshot::chunk::estimated_rows(&mut src, t)
                .await
                .map_err(self.src_err())?;
            self.progress.set_table(TableProgress {
                table: t.to_string(),
                rows_estimated: estimate,
                ..Default::default()
            });
            todo.push((estimate, t.clone()));
        }
        self.progress
            .tables_total
            .store(tables.len() as u64, Ordering::Relaxed);
        self.progress
            .tables_done
            .store((tables.len() - todo.len()) as u64, Ordering::Relaxed);
        journal.save(&self.dir).map_err(self.io_err(&self.dir))?;
        if !todo.is_empty() {
            // The biggest tables first, so that they do not end the dump alone.
            todo.sort_by_key(|(estimate, _)| std::cmp::Reverse(*estimate));
            let how = Snapshots::of(self.dumper.consistency, self.flavor);
            let mut conns = Vec::new();
            for _ in 0..self.dumper.threads.clamp(1, todo.len()) {
                conns.push(self.reader_session().await?);
            }
            let readers = self.start_snapshots(conns, how).await?;
            // Tables created between the listing and the snapshots: their CREATE may be
            // before the dump's position. One created after it fails to open in the snapshot
            // and gets one of its own (`read_tables`).
            for t in list_tables(&mut src, &self.filter)
                .await
                .map_err(self.src_err())?
            {
                if !journal.tables.contains_key(&t.to_string())
                    && !todo.iter().any(|(_, known)| *known == t)
                {
                    self.progress.tables_total.fetch_add(1, Ordering::Relaxed);
                    todo.push((0, t));
                }
            }
            let queue = Mutex::new(todo.into_iter().map(|(_, t)| t).collect::<VecDeque<_>>());
            let shared = Mutex::new(journal);
            futures_util::future::try_join_all(
                readers
                    .into_iter()
                    .map(|r| self.read_tables(r, how, &queue, &shared)),
            )
            .await?;
            journal = shared.into_inner().unwrap_or_else(|p| p.into_inner());
        }
        self.fence.check()?;
        let (mut at, safe_until) = match journal.positions() {
            Some(p) => p,
            None => (
                crate::upstream::current_position(&mut src, self.flavor, &self.source.from.addr())
                    .await?,
                None,
            ),
        };
        if at.gtid.is_none() {
            let b = &at.binlog;
            at.gtid = crate::upstream::gtid_at(
                &mut src,
                self.flavor,
                &self.source.from.addr(),
                &b.name,
                b.pos,
            )
            .await?;
        }
        let text = layout::metadata_text(
            &journal.started,
            &layout::now_text(),
            Some(&at),
            safe_until.as_ref(),
        );
        let path = self.dir.join(layout::METADATA);
        crate::durable::write_atomically(&path, text.as_bytes()).map_err(self.io_err(&path))?;
        journal.finished = true;
        journal.save(&self.dir).map_err(self.io_err(&self.dir))?;
        tracing::info!(task = %self.task, source = %self.source.source_id, dir = %self.dir.display(), position = %at, tables = journal.tables.len(), "dump finished");
        Ok(())
    }

    /// The journal of this task's dump of this source: a new one in an empty (or new)
    /// directory; a directory holding anything else is refused.
    fn open_journal(&self) -> Result<Journal> {
        let dir = &self.dir;
        let refuse = |why: String| {
            Error::Invalid(format!(
                "dump directory {}: {why}; give this source an empty or new directory (loaders.<name>.dir, named by the instance's loader-config-name)",
                dir.display()
            ))
        };
        crate::durable::create_private_dir(dir).map_err(|e| refuse(e.to_string()))?;
        match Journal::read(dir).map_err(refuse)? {
            Some(j) if j.task == self.task && j.source_id == self.source.source_id => Ok(j),
            Some(j) => Err(refuse(format!(
                "it holds the dump of task `{}` from source `{}`",
                j.task, j.source_id
            ))),
            None => {
                let mut entries = std::fs::read_dir(dir).map_err(|e| refuse(e.to_string()))?;
                if let Some(Ok(e)) = entries.next() {
                    return Err(refuse(format!(
                        "it holds files dm did not write ({})",
                        e.file_name().to_string_lossy()
                    )));
                }
                let journal = Journal {
                    task: self.task.clone(),
                    source_id: self.source.source_id.clone(),
                    flavor: Some(self.flavor),
                    started: layout::now_text(),
                    ..Default::default()
                };
                // Before any other file: a dump stopped at any point resumes in its directory.
                journal.save(dir).map_err(|e| refuse(e.to_string()))?;
                Ok(journal)
            }
        }
    }

    /// Files of tables a killed dump had not finished, and temporary files.
    fn remove_unfinished(&self, journal: &Journal) -> Result<()> {
        let kept: std::collections::HashSet<&String> =
            journal.tables.values().flat_map(|t| &t.files).collect();
        let entries = std::fs::read_dir(&self.dir).map_err(self.io_err(&self.dir))?;
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            let data = name.ends_with(".sql") && !name.ends_with("-schema-create.sql");
            if (data && !kept.contains(&name)) || name.ends_with(".tmp") {
                std::fs::remove_file(e.path()).map_err(self.io_err(&e.path()))?;
            }
        }
        Ok(())
    }

    /// A source session returning raw bytes.
    async fn reader_session(&self) -> Result<Conn> {
        crate::db::connect_raw(&self.source.from, DbRole::Source).await
    }

    /// `<db>-schema-create.sql` of every selected database.
    async fn write_databases(&self, src: &mut Conn) -> Result<()> {
        let names = list_schemas(src, &self.filter)
            .await
            .map_err(self.src_err())?;
        src.query_drop("SET character_set_results = utf8mb4")
            .await
            .map_err(self.src_err())?;
        for db in names {
            let create: Option<(String, String)> = src
                .query_first(format!("SHOW CREATE DATABASE {}", quote_ident(&db)))
                .await
                .map_err(self.src_err())?;
            let Some((_, create)) = create else { continue };
            let file = format!("{}-schema-create.sql", file_part(&db));
            let path = self.dir.join(&file);
            let text = format!("/*!40101 SET NAMES utf8mb4*/;\n{create};\n");
            crate::durable::write_atomically(&path, text.as_bytes()).map_err(self.io_err(&path))?;
        }
        src.query_drop("SET character_set_results = binary")
            .await
            .map_err(self.src_err())
    }

    /// Views are not dumped: named, so that nothing is left out silently.
    async fn warn_about_views(&self, src: &mut Conn) -> Result<()> {
        let views: Vec<(Vec<u8>, Vec<u8>)> = src
            .query("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'VIEW'")
            .await
            .map_err(self.src_err())?;
        let named: Vec<String> = views
            .into_iter()
            .map(|(s, t)| TableName::new(String::from_utf8_lossy(&s), String::from_utf8_lossy(&t)))
            .filter(|t| self.filter.allows_table(&t.schema, &t.table))
            .map(|t| t.to_string())
            .collect();
        if !named.is_empty() {
            tracing::warn!(task = %self.task, source = %self.source.source_id, views = ?named, "views are not dumped: create them on the target by hand");
        }
        Ok(())
    }

    /// Starts a snapshot in every session, tied to binlog positions as `how` says.
    async fn start_snapshots(&self, conns: Vec<Conn>, how: Snapshots) -> Result<Vec<Reader>> {
        let addr = self.source.from.addr();
        let se = self.src_err();
        let mut readers = Vec::with_capacity(conns.len());
        if how != Snapshots::Locked {
            for mut conn in conns {
                let (binlog, executed) = crate::snapshot::begin_snapshot(
                    &mut conn,
                    self.flavor,
                    &self.source,
                    how == Snapshots::Bracketed,
                )
                .await?;
                let at = position(self.flavor, binlog, executed)?;
                readers.push(Reader { conn, at });
            }
            return Ok(readers);
        }
        let mut locker = crate::db::connect(&self.source.from, DbRole::Source).await?;
        if let Err(e) = locker.query_drop("FLUSH TABLES WITH READ LOCK").await {
            let denied = matches!(&e, mysql_async::Error::Server(s) if matches!(s.code, errno::SPECIFIC_ACCESS_DENIED | errno::ACCESS_DENIED | errno::DBACCESS_DENIED));
            if !denied {
                return Err(se(e));
            }
            return Err(Error::Invalid(format!(
                "{addr} refused FLUSH TABLES WITH READ LOCK ({e}), which a consistent dump takes for a moment: grant the RELOAD privilege, or set consistency: none in the task's mydumpers entry (no lock; tables are read at different positions and dm's load&sync replays the difference in safe mode)"
            )));
        }
        for mut conn in conns {
            conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .await
                .map_err(&se)?;
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                .await
                .map_err(&se)?;
            readers.push(Reader {
                conn,
                at: Position::default(),
            });
        }
        let status = crate::upstream::binlog_status(&mut locker, self.flavor, &addr).await;
        locker.query_drop("UNLOCK TABLES").await.map_err(&se)?;
        let (binlog, executed) = status?;
        let at = position(self.flavor, binlog, executed)?;
        for r in &mut readers {
            r.at = at.clone();
        }
        Ok(readers)
    }

    /// Takes tables from `queue` until it is empty, each written whole and recorded.
    async fn read_tables(
        &self,
        mut reader: Reader,
        how: Snapshots,
        queue: &Mutex<VecDeque<TableName>>,
        journal: &Mutex<Journal>,
    ) -> Result<()> {
        loop {
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            let Some(t) = next else { break };
            self.fence.check()?;
            let mut attempt = 1;
            let done = loop {
                match self.write_table(&mut reader, &t, how).await {
                    Err(e) if e.errno() == Some(errno::TABLE_DEF_CHANGED) && attempt < ATTEMPTS => {
                        tracing::info!(table = %t, "the table changed after the snapshot began: reading it in a new one");
                        attempt += 1;
                        reader
                            .conn
                            .query_drop("ROLLBACK")
                            .await
                            .map_err(self.src_err())?;
                        // A lone session cannot share the others' locked position: its own
                        // (on MySQL under a lock of its own).
                        let again = match how {
                            Snapshots::Bracketed => Snapshots::Bracketed,
                            Snapshots::Locked | Snapshots::Own => Snapshots::Own,
                        };
                        reader = self
                            .start_snapshots(vec![reader.conn], again)
                            .await?
                            .pop()
                            .expect("one session in, one out");
                    }
                    r => break r?,
                }
            };
            if let Some(done) = done {
                let mut j = journal.lock().unwrap_or_else(|p| p.into_inner());
                j.tables.insert(t.to_string(), done);
                j.save(&self.dir).map_err(self.io_err(&self.dir))?;
            }
            self.progress.tables_done.fetch_add(1, Ordering::Relaxed);
            crate::failpoint::pause("after-dump-table").await;
        }
        reader
            .conn
            .query_drop("COMMIT")
            .await
            .map_err(self.src_err())
    }

    /// The schema file and the data files of `t`; `None` when it was dropped meanwhile.
    async fn write_table(
        &self,
        reader: &mut Reader,
        t: &TableName,
        how: Snapshots,
    ) -> Result<Option<TableDone>> {
        let se = self.src_err();
        let conn = &mut reader.conn;
        // Opening the table takes its metadata lock for the rest of the transaction: its
        // definition cannot change under the reads below.
        match conn
            .query_drop(format!("SELECT 1 FROM {} LIMIT 0", t.quoted()))
            .await
        {
            Err(mysql_async::Error::Server(e)) if e.code == errno::NO_SUCH_TABLE => {
                return Ok(None)
            }
            r => r.map_err(&se)?,
        }
        conn.query_drop("SET character_set_results = utf8mb4")
            .await
            .map_err(&se)?;
        let create: Option<(String, String)> = conn
            .query_first(format!("SHOW CREATE TABLE {}", t.quoted()))
            .await
            .map_err(&se)?;
        conn.query_drop("SET character_set_results = binary")
            .await
            .map_err(&se)?;
        let (Some((_, create)), Some(table)) = (create, load_table(conn, t).await.map_err(&se)?)
        else {
            return Ok(None);
        };
        let prefix = format!("{}.{}", file_part(&t.schema), file_part(&t.table));
        let schema_file = format!("{prefix}-schema.sql");
        let path = self.dir.join(&schema_file);
        let text = format!(
            "/*!40101 SET NAMES utf8mb4*/;\n/*!40014 SET FOREIGN_KEY_CHECKS=0*/;\n{create};\n"
        );
        crate::durable::write_atomically(&path, text.as_bytes()).map_err(self.io_err(&path))?;

        let written: Vec<usize> = (0..table.columns.len())
            .filter(|&i| !table.columns[i].generated)
            .collect();
        let col_list = written
            .iter()
            .map(|&i| quote_ident(&table.columns[i].name))
            .collect::<Vec<_>>()
            .join(",");
        let select = match self.dumper.row_condition() {
            Some(w) => format!("SELECT {col_list} FROM {} WHERE ({w})", t.quoted()),
            None => format!("SELECT {col_list} FROM {}", t.quoted()),
        };
        let mut out = DataFiles {
            dir: &self.dir,
            prefix,
            head: format!(
                "INSERT INTO {} ({col_list}) VALUES\n",
                quote_ident(&t.table)
            ),
            rows_per_file: self.dumper.rows.max(1),
            file: None,
            n: 0,
            in_file: 0,
            statement: 0,
            names: vec![schema_file],
        };
        let key = t.to_string();
        let mut rows = 0u64;
        let mut result = conn.exec_iter(select, ()).await.map_err(&se)?;
        let mut text = String::new();
        while let Some(row) = result.next().await.map_err(&se)? {
            text.clear();
            text.push('(');
            for (k, (&ci, v)) in written.iter().zip(row.unwrap()).enumerate() {
                if k > 0 {
                    text.push(',');
                }
                let col = &table.columns[ci];
                Datum::from_value(col, v).write_sql_for(col.kind(), &mut text);
            }
            text.push(')');
            out.push(&text).map_err(self.io_err(&self.dir))?;
            rows += 1;
            self.progress.rows_loaded.fetch_add(1, Ordering::Relaxed);
            self.progress.add_table_rows(&key, 1, text.len() as u64);
        }
        drop(result);
        let files = out.finish().map_err(self.io_err(&self.dir))?;
        // A table outside InnoDB (MyISAM, Aria, MEMORY) is not in the snapshot: it was read
        // as it was during the read, so its rows may hold changes up to the position after.
        let engine: Option<String> = conn
            .exec_first(
                "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&t.schema, &t.table),
            )
            .await
            .map_err(&se)?;
        let in_snapshot = engine.is_some_and(|e| e.eq_ignore_ascii_case("InnoDB"));
        let high = match how {
            Snapshots::Locked | Snapshots::Own if in_snapshot => reader.at.binlog.clone(),
            _ => {
                crate::upstream::binlog_status(conn, self.flavor, &self.source.from.addr())
                    .await?
                    .0
            }
        };
        tracing::info!(table = %t, rows, files = files.len() - 1, "table dumped");
        Ok(Some(TableDone {
            schema: t.schema.clone(),
            table: t.table.clone(),
            files,
            rows,
            low: reader.at.clone(),
            high,
        }))
    }
}

/// A binlog position with the GTID set MySQL reported with it (MariaDB's is looked up once,
/// for `metadata`).
fn position(flavor: Flavor, binlog: BinlogPos, executed: Option<String>) -> Result<Position> {
    let gtid = executed
        .map(|g| crate::position::GtidSet::parse(flavor, &g).map_err(Error::Invalid))
        .transpose()?;
    Ok(Position { binlog, gtid })
}

/// The data files of one table: `<prefix>.<nnnnn>.sql`, each of up to `rows_per_file` rows in
/// INSERT statements of about `STATEMENT_BYTES`.
struct DataFiles<'a> {
    dir: &'a Path,
    prefix: String,
    head: String,
    rows_per_file: u64,
    file: Option<BufWriter<File>>,
    n: u32,
    in_file: u64,
    /// Bytes of the statement being written (0: none open).
    statement: usize,
    /// Files written, the schema file first.
    names: Vec<String>,
}

impl DataFiles<'_> {
    fn push(&mut self, row: &str) -> std::io::Result<()> {
        if self.file.is_none() {
            let name = format!("{}.{:05}.sql", self.prefix, self.n);
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(self.dir.join(&name))?;
            let mut f = BufWriter::with_capacity(1 << 20, f);
            f.write_all(DATA_HEADER.as_bytes())?;
            self.file = Some(f);
            self.names.push(name);
        }
        let f = self.file.as_mut().expect("opened above");
        if self.statement == 0 {
            f.write_all(self.head.as_bytes())?;
            self.statement = self.head.len();
        } else {
            f.write_all(b",\n")?;
        }
        f.write_all(row.as_bytes())?;
        self.statement += row.len() + 2;
        self.in_file += 1;
        if self.statement >= STATEMENT_BYTES {
            f.write_all(b";\n")?;
            self.statement = 0;
        }
        if self.in_file >= self.rows_per_file {
            self.close()?;
        }
        Ok(())
    }

    fn close(&mut self) -> std::io::Result<()> {
        if let Some(mut f) = self.file.take() {
            if self.statement > 0 {
                f.write_all(b";\n")?;
            }
            f.flush()?;
            f.get_ref().sync_all()?;
            self.statement = 0;
            self.in_file = 0;
            self.n += 1;
        }
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<Vec<String>> {
        self.close()?;
        File::open(self.dir)?.sync_all()?;
        Ok(self.names)
    }
}
