//! The full phase: copy the selected tables of a source into the target.
//!
//! Protocol. Each table is read in a consistent snapshot of its own
//! (`START TRANSACTION WITH CONSISTENT SNAPSHOT`), and the binlog position of that snapshot is
//! recorded with it (MariaDB reports it as `binlog_snapshot_file/position` without any lock;
//! MySQL needs a brief `FLUSH TABLES WITH READ LOCK`). Its definition is read under the same
//! snapshot's metadata lock, so rows, definition and position agree. Rows stream from the
//! source (binary protocol, raw bytes) straight into multi-row INSERTs on the target: no dump
//! files. When a table's last rows are in, a row in `<task>_load` records the table, its
//! position and model; a restarted full phase skips recorded tables and copies the others
//! again from scratch (drop and create).
//!
//! The incremental phase then starts from the lowest table position and, for each table,
//! skips the events before that table's own snapshot position: every change is applied once,
//! on top of the snapshot that did not contain it.

mod table_copy;

use crate::checkpoint::MetaTables;
use crate::config::{DbConfig, Flavor, SourceConfig};
use crate::db::quote_ident;
use crate::error::{DbRole, Error, Result};
use crate::rules::TableFilter;
use crate::schema::{list_tables, Table, TableName};
use crate::status::Progress;
use crate::upstream::Position;
use mysql_async::prelude::Queryable;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What the full phase needs to know.
pub struct FullPhase {
    pub source: SourceConfig,
    pub flavor: Flavor,
    pub target: DbConfig,
    pub filter: TableFilter,
    pub meta: MetaTables,
    pub threads: usize,
    pub progress: Arc<Progress>,
}

impl FullPhase {
    /// Copies every selected table not copied yet; returns all copied tables with the
    /// positions of their snapshots.
    pub async fn run(&self) -> Result<Vec<(Table, Position)>> {
        let src_addr = self.source.from.addr();
        let tgt_addr = self.target.addr();
        let mut src = crate::db::connect(&self.source.from, DbRole::Source).await?;
        let mut tgt = crate::db::connect(&self.target, DbRole::Target).await?;
        self.create_schemas(&mut src, &mut tgt).await?;
        loop {
            let done: BTreeSet<TableName> = self
                .meta
                .loaded_tables(&mut tgt, &tgt_addr, &self.source.source_id)
                .await?
                .into_iter()
                .map(|(t, _)| t.name)
                .collect();
            let listed = list_tables(&mut src, &self.filter)
                .await
                .map_err(|e| Error::db(DbRole::Source, &src_addr, e))?;
            self.progress
                .tables_total
                .store(listed.len() as u64, Ordering::Relaxed);
            self.progress.tables_done.store(
                listed.iter().filter(|t| done.contains(t)).count() as u64,
                Ordering::Relaxed,
            );
            let todo: Vec<TableName> = listed.into_iter().filter(|t| !done.contains(t)).collect();
            // Tables created while we copy show up in the next listing.
            if todo.is_empty() {
                break;
            }
            self.copy_tables(todo).await?;
        }
        self.meta
            .loaded_tables(&mut tgt, &tgt_addr, &self.source.source_id)
            .await
    }

    async fn copy_tables(&self, todo: Vec<TableName>) -> Result<()> {
        let sem = Arc::new(tokio::sync::Semaphore::new(self.threads.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for name in todo {
            let permit = sem
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::Cancelled)?;
            let copy = table_copy::TableCopy {
                source: self.source.clone(),
                flavor: self.flavor,
                target: self.target.clone(),
                meta: self.meta.clone(),
                progress: self.progress.clone(),
                name,
            };
            set.spawn(async move {
                let r = copy.run().await;
                drop(permit);
                r
            });
            // Stop early when a copy failed.
            while let Some(r) = set.try_join_next() {
                r.map_err(|e| Error::Invalid(format!("table copy panicked: {e}")))??;
            }
        }
        while let Some(r) = set.join_next().await {
            r.map_err(|e| Error::Invalid(format!("table copy panicked: {e}")))??;
        }
        Ok(())
    }

    /// Creates the selected schemas in the target with their character sets.
    async fn create_schemas(
        &self,
        src: &mut mysql_async::Conn,
        tgt: &mut mysql_async::Conn,
    ) -> Result<()> {
        let rows: Vec<(String, String, String)> = src
            .query("SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA")
            .await
            .map_err(|e| Error::db(DbRole::Source, &self.source.from.addr(), e))?;
        for (db, cs, coll) in rows
            .into_iter()
            .filter(|(d, _, _)| self.filter.allows_schema(d))
        {
            let sql = format!(
                "CREATE DATABASE IF NOT EXISTS {} DEFAULT CHARACTER SET {cs} COLLATE {coll}",
                quote_ident(&db)
            );
            tgt.query_drop(sql)
                .await
                .map_err(|e| Error::db(DbRole::Target, &self.target.addr(), e))?;
        }
        Ok(())
    }
}
