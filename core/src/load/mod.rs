//! TiDB DM's `task-mode: load` and `load&sync`: import a dump directory that mydumper or
//! dumpling wrote (DM users have them) into the target, file by file, each file's statements
//! and its "done" mark in one target transaction so that a restart goes on with the next
//! file; then, for `load&sync`, replicate from the position the dump's `metadata` gives.
//! The block-allow list selects databases and tables, routes rename them.

mod dump_dir;
mod statements;

use crate::context::SubtaskContext;
use crate::db::quote_ident;
use crate::error::{DbRole, Error, Result};
use crate::position::{BinlogPos, Position};
use crate::rules::SchemaRoute;
use crate::schema::{parse_ddl, DdlKind, Tracker};
use crate::table::TableName;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub struct LoadPhase {
    /// What the subtask's phases share (source, target, table rules, progress).
    pub ctx: Arc<SubtaskContext>,
    /// The dump directory.
    pub dir: PathBuf,
}

/// What the import leaves for replication: where the dump was taken and the source's tables
/// as the dump's schema files define them.
pub struct Loaded {
    pub position: Option<Position>,
    /// Replication from `position` stays in safe mode up to here: the dump's tables were read
    /// at different positions (dm's dumps without a lock, or resumed).
    pub safe_until: Option<BinlogPos>,
    /// Tables read after `position` (dm's dumps): their events before their own position are
    /// in their files already.
    pub table_positions: Vec<(TableName, BinlogPos)>,
    pub tracker: Tracker,
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::Invalid(format!("cannot read the dump file {}: {e}", path.display())))
}

fn file_key(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl LoadPhase {
    fn tgt_err(&self) -> impl Fn(mysql_async::Error) -> Error + '_ {
        let addr = self.ctx.target.addr();
        move |e| Error::db(DbRole::Target, &addr, e)
    }

    pub async fn run(&self) -> Result<Loaded> {
        let dump = dump_dir::read(&self.dir, self.ctx.flavor)?;
        if !dump.other.is_empty() {
            tracing::warn!(dir = %self.dir.display(), files = ?dump.other, "dump files dm does not import (views, triggers, routines, compressed files): apply them by hand");
        }
        let mut tgt = crate::db::connect(&self.ctx.target, DbRole::Target).await?;
        // As mysqldump and myloader do: a 0 in an AUTO_INCREMENT column stays 0.
        tgt.query_drop(
            "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO', SESSION foreign_key_checks = 0",
        )
        .await
        .map_err(self.tgt_err())?;
        let done: BTreeSet<String> = tgt
            .exec(
                format!(
                    "SELECT file_name FROM {} WHERE source_id = ?",
                    self.ctx.meta.dump_files
                ),
                (&self.ctx.source.source_id,),
            )
            .await
            .map_err(self.tgt_err())?
            .into_iter()
            .collect();
        for (db, path) in &dump.databases {
            if self.ctx.filter.allows_schema(db) {
                self.create_database(&mut tgt, db, path).await?;
            }
        }
        let selected: Vec<&TableName> = dump
            .schemas
            .keys()
            .filter(|t| self.ctx.filter.allows_table(&t.schema, &t.table))
            .collect();
        self.ctx
            .progress
            .tables_total
            .store(selected.len() as u64, Ordering::Relaxed);
        let mut tracker = Tracker::default();
        for t in selected {
            let target = self
                .create_table(&mut tgt, t, &dump.schemas[t], &mut tracker)
                .await?;
            for file in dump.data.get(t).into_iter().flatten() {
                if !done.contains(&file_key(file)) {
                    self.import_file(&mut tgt, &target, file).await?;
                }
            }
            self.ctx
                .progress
                .tables_done
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(table = %t, into = %target, "dump of table imported");
        }
        let table_positions = dump
            .table_positions
            .into_iter()
            .filter(|(_, p)| dump.position.as_ref().is_some_and(|at| *p > at.binlog))
            .collect();
        Ok(Loaded {
            position: dump.position,
            safe_until: dump.safe_until,
            table_positions,
            tracker,
        })
    }

    async fn create_database(&self, tgt: &mut Conn, db: &str, path: &Path) -> Result<()> {
        let to = match self.ctx.router.route_schema(db) {
            SchemaRoute::Same => db.to_string(),
            SchemaRoute::To { schema, .. } => schema,
            SchemaRoute::Away => return Ok(()),
        };
        let bytes = read_file(path)?;
        for stmt in statements::split(&bytes) {
            let sql = String::from_utf8_lossy(stmt);
            if let Ok(Some(ddl)) = parse_ddl("", &sql) {
                if let Some(create) = ddl.database_statement_for(&to) {
                    tgt.query_drop(create).await.map_err(self.tgt_err())?;
                }
            }
        }
        Ok(())
    }

    /// Creates the table (`IF NOT EXISTS`: merged shards share one) and tracks its model;
    /// the target's name.
    async fn create_table(
        &self,
        tgt: &mut Conn,
        t: &TableName,
        path: &Path,
        tracker: &mut Tracker,
    ) -> Result<TableName> {
        let routed = self.ctx.router.route(t);
        if routed.as_ref().is_some_and(|r| !r.extra.is_empty()) {
            return Err(Error::Invalid(format!(
                "{t}: routes that add columns (extract-table/schema/source) do not work with task-mode load yet; use task-mode all"
            )));
        }
        let target = routed.map(|r| r.target).unwrap_or_else(|| t.clone());
        let bytes = read_file(path)?;
        let mut created = false;
        for stmt in statements::split(&bytes) {
            let sql = String::from_utf8_lossy(stmt);
            let ddl = match parse_ddl(&t.schema, &sql) {
                Ok(Some(d)) if d.kind == DdlKind::CreateTable => d,
                // SET NAMES / FOREIGN_KEY_CHECKS / TIME_ZONE and other session settings.
                _ => continue,
            };
            ddl.apply(tracker).map_err(|e| {
                Error::Invalid(format!(
                    "{}: cannot read the CREATE TABLE: {e}",
                    path.display()
                ))
            })?;
            let create = ddl.renamed_to(&target).ok_or_else(|| {
                Error::Invalid(format!("{}: not a plain CREATE TABLE", path.display()))
            })?;
            tgt.query_drop(format!(
                "CREATE DATABASE IF NOT EXISTS {}",
                quote_ident(&target.schema)
            ))
            .await
            .map_err(self.tgt_err())?;
            tgt.query_drop(create).await.map_err(self.tgt_err())?;
            created = true;
        }
        if !created {
            return Err(Error::Invalid(format!(
                "{}: holds no CREATE TABLE",
                path.display()
            )));
        }
        Ok(target)
    }

    /// One data file: its INSERTs into `target`, then its "done" mark, in one transaction.
    async fn import_file(&self, tgt: &mut Conn, target: &TableName, path: &Path) -> Result<()> {
        let bytes = read_file(path)?;
        let qualified = format!(
            "{}.{}",
            quote_ident(&target.schema),
            quote_ident(&target.table)
        );
        let at = |e: mysql_async::Error| {
            let mut err = Error::db(DbRole::Target, &self.ctx.target.addr(), e);
            if let Error::Db { message, .. } = &mut err {
                message.push_str(&format!(
                    "; while importing the dump file {}",
                    path.display()
                ));
            }
            err
        };
        tgt.query_drop("START TRANSACTION").await.map_err(at)?;
        for stmt in statements::split(&bytes) {
            if let Some(insert) = statements::retarget_insert(stmt, &qualified) {
                tgt.query_drop(insert.as_slice()).await.map_err(at)?;
            } else if let Err(why) = statements::check_session_setting(stmt) {
                let _ = tgt.query_drop("ROLLBACK").await;
                return Err(Error::Invalid(format!(
                    "{}: {why}; dm runs only the INSERTs of a dump's data files and the session settings they begin with",
                    path.display()
                )));
            } else {
                tgt.query_drop(stmt).await.map_err(at)?;
            }
        }
        self.ctx.fence.check()?;
        tgt.exec_drop(
            format!(
                "INSERT INTO {} (source_id, file_name) VALUES (?, ?)",
                self.ctx.meta.dump_files
            ),
            (&self.ctx.source.source_id, file_key(path)),
        )
        .await
        .map_err(at)?;
        tgt.query_drop("COMMIT").await.map_err(at)?;
        crate::failpoint::pause("after-dump-file").await;
        Ok(())
    }
}
