//! The full phase: copy the selected tables of a source into the target, chunk by chunk.
//!
//! Protocol. Each table with a usable key is split into key ranges (`chunk.rs`); the plan is
//! stored in `<task>_chunk` when the table is created in the target. Every chunk is read in a
//! consistent snapshot of its own (`START TRANSACTION WITH CONSISTENT SNAPSHOT`) whose binlog
//! position is its low watermark (MariaDB reports it as `binlog_snapshot_file/position`
//! without any lock; MySQL needs a brief `FLUSH TABLES WITH READ LOCK`), and its rows stream
//! from the source (binary protocol, raw bytes) straight into one target transaction that
//! also marks the chunk done with that position: no dump files, and a kill loses at most the
//! chunks in flight. A restarted full phase, on this worker or another, copies only the chunks
//! not done. A chunk that finds the table's columns changed since planning starts the table
//! over.
//!
//! The incremental phase then starts at the lowest chunk position, skips each table's events
//! before that table's lowest chunk position (every chunk of it has them) and stays in safe
//! mode until the highest chunk position of all: the chunks read at different moments converge
//! to the source's state as the full row images are replayed over them.

pub mod chunk;
mod chunk_copy;
mod indexes;
mod queue;

use crate::checkpoint::ChunkRecord;
use crate::config::DumperConfig;
use crate::context::SubtaskContext;
use crate::db::quote_ident;
use crate::error::{errno, DbRole, Error, Result};
use crate::position::{BinlogPos, Position};
use crate::rules::{Routed, SchemaRoute};
use crate::schema::foreign_keys::{self, Groups};
use crate::schema::{list_schemas, list_tables, load_table};
use crate::status::TableProgress;
use crate::table::{Table, TableName};
use chunk::ChunkKey;
pub(crate) use chunk_copy::begin_snapshot;
use chunk_copy::{ChunkCopier, Copied, CopyPlan};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use queue::ChunkQueue;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Whether the full phase can split `table` into key ranges (and so resume inside it).
pub async fn chunkable(conn: &mut Conn, table: &Table) -> bool {
    matches!(ChunkKey::of(conn, table).await, Ok(Some(_)))
}

/// What the full phase needs to know.
pub struct FullPhase {
    /// What the subtask's phases share (source, target, table and row rules, progress).
    pub ctx: Arc<SubtaskContext>,
    pub dumper: DumperConfig,
}

impl FullPhase {
    fn src_err(&self) -> impl Fn(mysql_async::Error) -> Error + '_ {
        |e| Error::db(DbRole::Source, &self.ctx.source.from.addr(), e)
    }

    fn tgt_err(&self) -> impl Fn(mysql_async::Error) -> Error + '_ {
        |e| Error::db(DbRole::Target, &self.ctx.target.addr(), e)
    }

    /// Copies every chunk of every selected table not copied yet; returns all copied tables
    /// with the lowest and highest positions of their chunks.
    pub async fn run(&self) -> Result<Vec<(Table, Position, BinlogPos)>> {
        let tgt_addr = self.ctx.target.addr();
        let source_id = &self.ctx.source.source_id;
        let mut src = crate::db::connect_raw(&self.ctx.source.from, DbRole::Source).await?;
        let mut tgt = crate::db::connect(&self.ctx.target, DbRole::Target).await?;
        // Copiers of an earlier owner of this source (a frozen worker) may still hold chunk
        // transactions open: they end now, not when that process wakes up.
        let earlier: Vec<_> = (0..chunk_copy::MAX_COPIERS)
            .map(|i| {
                crate::session_lock::SessionLock::of(
                    &self.ctx.meta,
                    source_id,
                    chunk_copy::COPIER_LOCKS + i,
                )
            })
            .collect();
        crate::session_lock::end_holders(&mut tgt, &tgt_addr, &earlier).await?;
        self.create_schemas(&mut src, &mut tgt).await?;
        let linked;
        loop {
            let listed = list_tables(&mut src, &self.ctx.filter)
                .await
                .map_err(self.src_err())?;
            let groups = self.linked_groups(&mut src, &mut tgt, &listed).await?;
            let loaded: BTreeSet<TableName> = self
                .ctx
                .meta
                .loaded_tables(&mut tgt, &tgt_addr, source_id)
                .await?
                .into_iter()
                .map(|(t, _, _)| t.name)
                .collect();
            self.ctx
                .progress
                .tables_total
                .store(listed.len() as u64, Ordering::Relaxed);
            self.ctx.progress.tables_done.store(
                listed.iter().filter(|t| loaded.contains(t)).count() as u64,
                Ordering::Relaxed,
            );
            let todo: Vec<TableName> = listed.into_iter().filter(|t| !loaded.contains(t)).collect();
            // Tables created while we copy show up in the next listing.
            if todo.is_empty() {
                linked = groups;
                break;
            }
            let mut changed = BTreeSet::new();
            for group in groups.groups() {
                if group.iter().any(|t| todo.contains(t)) {
                    changed.extend(self.copy_linked(&mut src, &mut tgt, &group).await?);
                }
            }
            let todo: Vec<TableName> = todo.into_iter().filter(|t| !groups.linked(t)).collect();
            changed.extend(self.copy_tables(&mut tgt, &todo).await?);
            for name in changed {
                tracing::info!(table = %name, "columns changed during the copy; copying the table again");
                self.ctx
                    .meta
                    .forget_table(&mut tgt, &tgt_addr, source_id, &name)
                    .await?;
            }
            self.finish_tables(&mut tgt, &todo).await?;
        }
        let mut tables = self
            .ctx
            .meta
            .loaded_tables(&mut tgt, &tgt_addr, source_id)
            .await?;
        if self.dumper.consistency().bracketed(self.ctx.flavor) {
            // Each chunk's snapshot is somewhere after its bracket: all are before this.
            let end = crate::upstream::current_position(
                &mut src,
                self.ctx.flavor,
                &self.ctx.source.from.addr(),
            )
            .await?;
            // Linked tables were read at one exact position (`copy_linked`).
            for (_, _, high) in tables.iter_mut().filter(|(t, ..)| !linked.linked(&t.name)) {
                *high = high.clone().max(end.binlog.clone());
            }
        }
        Ok(tables)
    }

    /// Copies the chunks of `todo` not copied yet: planners create and plan the tables while
    /// copiers copy the chunks planned so far. Returns the tables whose columns changed.
    async fn copy_tables(&self, tgt: &mut Conn, todo: &[TableName]) -> Result<BTreeSet<TableName>> {
        if todo.is_empty() {
            return Ok(BTreeSet::new());
        }
        let queue = Arc::new(ChunkQueue::default());
        // A test holding this failpoint wants every table made before any row is copied.
        let plan_first = crate::failpoint::armed("after-tables-planned");
        let mut copiers = tokio::task::JoinSet::new();
        if !plan_first {
            self.spawn_copiers(&queue, &mut copiers).await?;
        }
        self.plan_tables(tgt, todo, &queue).await?;
        queue.planning_done();
        if plan_first {
            crate::failpoint::pause("after-tables-planned").await;
            self.spawn_copiers(&queue, &mut copiers).await?;
        }
        let mut changed = BTreeSet::new();
        while let Some(r) = copiers.join_next().await {
            changed.extend(r.map_err(|e| Error::Internal(format!("chunk copier panicked: {e}")))??);
        }
        Ok(changed)
    }

    /// Queues the chunks of `todo` not copied yet: tables planned in an earlier run keep their
    /// plan, the others are created in the target and planned now, by `dumper.threads`
    /// planners (a table's planning is a dozen round trips and a CREATE TABLE: thousands of
    /// tables one after the other would take minutes).
    async fn plan_tables(
        &self,
        tgt: &mut Conn,
        todo: &[TableName],
        queue: &ChunkQueue,
    ) -> Result<()> {
        let source_id = &self.ctx.source.source_id;
        let tgt_addr = self.ctx.target.addr();
        let mut earlier: BTreeMap<TableName, Vec<ChunkRecord>> = BTreeMap::new();
        for c in self
            .ctx
            .meta
            .chunks(tgt, &tgt_addr, source_id, None)
            .await?
        {
            earlier.entry(c.table.clone()).or_default().push(c);
        }
        let earlier = Mutex::new(earlier);
        let next = Mutex::new(todo.iter());
        let planners = self.dumper.threads.clamp(1, todo.len().max(1));
        let planner = || async {
            let mut src = crate::db::connect_raw(&self.ctx.source.from, DbRole::Source).await?;
            let mut tgt = crate::db::connect(&self.ctx.target, DbRole::Target).await?;
            loop {
                let Some(name) = next.lock().unwrap_or_else(|e| e.into_inner()).next() else {
                    return Ok::<_, Error>(());
                };
                let before = earlier
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(name);
                self.queue_table(&mut src, &mut tgt, name, before, queue)
                    .await?;
            }
        };
        futures_util::future::try_join_all((0..planners).map(|_| planner())).await?;
        Ok(())
    }

    /// Plans one table (or takes its plan of an earlier run) and queues its chunks not done.
    async fn queue_table(
        &self,
        src: &mut Conn,
        tgt: &mut Conn,
        name: &TableName,
        earlier: Option<Vec<ChunkRecord>>,
        queue: &ChunkQueue,
    ) -> Result<()> {
        let estimate = chunk::estimated_rows(src, name)
            .await
            .map_err(self.src_err())?;
        let (planned, plan) = match earlier {
            Some(plan) => (self.resume_plan(src, tgt, name).await?, plan),
            None => match self
                .plan_table(src, tgt, name, estimate, self.dumper.defer_indexes)
                .await?
            {
                Some(p) => p,
                None => return Ok(()), // dropped meanwhile
            },
        };
        let planned = Arc::new(planned);
        self.show_table(name, &plan, estimate);
        queue.push_table(
            plan.into_iter()
                .filter(|c| c.done.is_none())
                .map(|c| (c, planned.clone())),
        );
        Ok(())
    }

    /// Creates the table in the target and stores its chunk plan. `None` when the table is
    /// gone.
    async fn plan_table(
        &self,
        src: &mut Conn,
        tgt: &mut Conn,
        name: &TableName,
        estimate: u64,
        defer_indexes: bool,
    ) -> Result<Option<(CopyPlan, Vec<ChunkRecord>)>> {
        let se = self.src_err();
        let Some((create, table)) = self.read_definition(src, name).await? else {
            return Ok(None);
        };
        let key = ChunkKey::of(src, &table).await.map_err(&se)?;
        let bounds = chunk::plan(src, &table, key.as_ref(), estimate, self.dumper.rows)
            .await
            .map_err(&se)?;
        let routed = self.ctx.router.route_checked(name)?;
        // A routed table's target may hold other tables' rows: its indexes stay. A table of
        // one chunk keeps them too: building them after its rows would cost an ALTER TABLE,
        // far more than they cost a small load (thousands of small tables, bench/tables.sh).
        let indexes_deferred = defer_indexes && routed.is_none() && bounds.len() > 1;
        match &routed {
            Some(r) => self.create_routed(tgt, &table, &create, r).await?,
            None => {
                self.create_table(src, tgt, name, create, indexes_deferred)
                    .await?
            }
        }
        let te = self.tgt_err();
        let plan: Vec<ChunkRecord> = bounds
            .into_iter()
            .enumerate()
            .map(|(i, (lower, upper))| ChunkRecord {
                table: name.clone(),
                chunk: i as u32,
                lower,
                upper,
                done: None,
                rows: 0,
                bytes: 0,
            })
            .collect();
        tgt.query_drop(
            self.ctx
                .meta
                .save_plan_sql(&self.ctx.source.source_id, &plan),
        )
        .await
        .map_err(&te)?;
        tracing::info!(table = %name, chunks = plan.len(), chunked = key.is_some(), "table planned");
        let columns = table.columns.iter().map(|c| c.name.clone()).collect();
        Ok(Some((
            CopyPlan {
                key,
                columns,
                routed,
                indexes_deferred,
            },
            plan,
        )))
    }

    /// The table's `SHOW CREATE TABLE` and its columns, read under one metadata lock so they
    /// agree; `None` when the table is gone.
    async fn read_definition(
        &self,
        src: &mut Conn,
        name: &TableName,
    ) -> Result<Option<(String, Table)>> {
        let se = self.src_err();
        src.query_drop("START TRANSACTION").await.map_err(&se)?;
        let read = async {
            match src
                .query_drop(format!("SELECT 1 FROM {} LIMIT 0", name.quoted()))
                .await
            {
                Err(mysql_async::Error::Server(e)) if e.code == errno::NO_SUCH_TABLE => {
                    return Ok(None)
                }
                r => r?,
            }
            let create: Option<(Vec<u8>, Vec<u8>)> = src
                .query_first(format!("SHOW CREATE TABLE {}", name.quoted()))
                .await?;
            let table = load_table(src, name).await?;
            Ok(create.zip(table))
        }
        .await
        .map_err(&se);
        src.query_drop("COMMIT").await.map_err(&se)?;
        Ok(
            read?
                .map(|((_, create), table)| (String::from_utf8_lossy(&create).into_owned(), table)),
        )
    }

    /// Makes the table in the target under its own name from the source's definition
    /// (without its secondary indexes when they are added after the copy), replacing
    /// whatever was there.
    async fn create_table(
        &self,
        src: &mut Conn,
        tgt: &mut Conn,
        name: &TableName,
        create: String,
        defer_indexes: bool,
    ) -> Result<()> {
        let te = self.tgt_err();
        if self.ctx.router.route_schema(&name.schema) == SchemaRoute::Away {
            self.create_schema_like(src, tgt, &name.schema, &name.schema)
                .await?;
        }
        tgt.query_drop(format!("USE {}", quote_ident(&name.schema)))
            .await
            .map_err(&te)?;
        tgt.query_drop(format!("DROP TABLE IF EXISTS {}", name.quoted()))
            .await
            .map_err(&te)?;
        let create = if defer_indexes {
            indexes::without_secondary_indexes(&create).0
        } else {
            create
        };
        tgt.query_drop(create).await.map_err(&te)?;
        Ok(())
    }

    /// Creates the target of a routed table unless another table routed there did: the
    /// source's definition under the target name, plus the extract columns, which join the
    /// primary key (rows of different shards may share key values).
    async fn create_routed(
        &self,
        tgt: &mut Conn,
        table: &Table,
        create: &str,
        r: &Routed,
    ) -> Result<()> {
        // Shards of several sources (and copiers) may get here at once: one at a time.
        let lock = format!(
            "dm-create-{}",
            crate::session_lock::stable_hash(&[
                r.target.schema.as_bytes(),
                r.target.table.as_bytes()
            ])
        );
        let te = self.tgt_err();
        tgt.exec_drop("DO GET_LOCK(?, 120)", (&lock,))
            .await
            .map_err(&te)?;
        let made = self.create_routed_locked(tgt, table, create, r).await;
        tgt.exec_drop("DO RELEASE_LOCK(?)", (&lock,))
            .await
            .map_err(&te)?;
        made
    }

    /// A shard whose definition has columns the table it is merged into lacks (an ALTER on the
    /// shard after another shard created the target, before this one's copy): the target
    /// gets them now, as the source defines them, so the copy carries them. The ALTER, in
    /// this shard's snapshot, still reaches the shard coordination (`ddl.rs`), where running it
    /// again is "already done".
    async fn add_missing_columns(
        &self,
        tgt: &mut Conn,
        merged: &Table,
        shard: &Table,
        create: &str,
    ) -> Result<()> {
        let missing: Vec<&str> = shard
            .columns
            .iter()
            .filter(|c| !c.generated && merged.column_index(&c.name).is_none())
            .map(|c| c.name.as_str())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let defs = crate::schema::column_definitions(create).map_err(|e| Error::Schema {
            table: shard.name.to_string(),
            position: "full phase".into(),
            message: format!(
                "cannot read its definition to add {missing:?} to {}, which it is merged into: {e}",
                merged.name
            ),
        })?;
        for name in missing {
            let Some(def) = defs.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
                continue;
            };
            let sql = format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {}",
                merged.name.quoted(),
                def.1
            );
            tracing::info!(shard = %shard.name, target = %merged.name, statement = %sql, "column of a shard added to the table it is merged into");
            tgt.query_drop(sql).await.map_err(self.tgt_err())?;
        }
        Ok(())
    }

    async fn create_routed_locked(
        &self,
        tgt: &mut Conn,
        table: &Table,
        create: &str,
        r: &Routed,
    ) -> Result<()> {
        let te = self.tgt_err();
        tgt.query_drop(format!(
            "CREATE DATABASE IF NOT EXISTS {}",
            quote_ident(&r.target.schema)
        ))
        .await
        .map_err(&te)?;
        if let Some(merged) = load_table(tgt, &r.target).await.map_err(&te)? {
            return self.add_missing_columns(tgt, &merged, table, create).await;
        }
        // SHOW CREATE TABLE names the table unqualified right after CREATE TABLE.
        let body = create.find('(').map_or(create, |i| &create[i..]);
        tgt.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {} {body}",
            r.target.quoted()
        ))
        .await
        .map_err(&te)?;
        if r.extra.is_empty() {
            return Ok(());
        }
        let mut alter: Vec<String> = r
            .extra
            .iter()
            .map(|(c, _)| {
                format!(
                    "ADD COLUMN {} VARCHAR(255) NOT NULL DEFAULT ''",
                    quote_ident(c)
                )
            })
            .collect();
        if !table.primary_key.is_empty() {
            let cols: Vec<String> = table
                .primary_key
                .iter()
                .chain(r.extra.iter().map(|(c, _)| c))
                .map(|c| quote_ident(c))
                .collect();
            alter.push(format!(
                "DROP PRIMARY KEY, ADD PRIMARY KEY ({})",
                cols.join(", ")
            ));
        }
        tgt.query_drop(format!(
            "ALTER TABLE {} {}",
            r.target.quoted(),
            alter.join(", ")
        ))
        .await
        .map_err(&te)?;
        Ok(())
    }

    /// A table planned before a restart: its key from the source, its columns from the
    /// target table made at planning.
    async fn resume_plan(
        &self,
        src: &mut Conn,
        tgt: &mut Conn,
        name: &TableName,
    ) -> Result<CopyPlan> {
        let routed = self.ctx.router.route_checked(name)?;
        let source_table = load_table(src, name).await.map_err(self.src_err())?;
        let key = match &source_table {
            Some(t) => ChunkKey::of(src, t).await.map_err(self.src_err())?,
            None => None,
        };
        // A routed table's target may be shared: the source is the reference then.
        let reference = match &routed {
            Some(_) => source_table,
            None => load_table(tgt, name).await.map_err(self.tgt_err())?,
        };
        Ok(CopyPlan {
            // Not remembered: the target's definition is compared with the source's then.
            indexes_deferred: self.dumper.defer_indexes && routed.is_none(),
            key,
            columns: reference
                .map(|t| t.columns.into_iter().map(|c| c.name).collect())
                .unwrap_or_default(),
            routed,
        })
    }

    fn show_table(&self, name: &TableName, plan: &[ChunkRecord], estimate: u64) {
        let done = plan.iter().filter(|c| c.done.is_some());
        self.ctx.progress.set_table(TableProgress {
            table: name.to_string(),
            chunks_total: plan.len() as u64,
            chunks_done: done.clone().count() as u64,
            rows: done.clone().map(|c| c.rows).sum(),
            bytes: done.map(|c| c.bytes).sum(),
            rows_estimated: estimate,
            indexes_building: 0,
        });
    }

    /// Starts `dumper.threads` copiers on the queue; each returns the tables whose columns
    /// changed.
    async fn spawn_copiers(
        &self,
        queue: &Arc<ChunkQueue>,
        copiers: &mut tokio::task::JoinSet<Result<BTreeSet<TableName>>>,
    ) -> Result<()> {
        for slot in 0..self.dumper.threads.max(1) {
            let mut copier = self.copier(slot).await?;
            let queue = queue.clone();
            let progress = self.ctx.progress.clone();
            copiers.spawn(async move {
                let mut changed = BTreeSet::new();
                while let Some((mut chunk, planned)) = queue.next().await {
                    let copied = if changed.contains(&chunk.table) {
                        Copied::Changed
                    } else {
                        copy_with_retry(&mut copier, &mut chunk, &planned).await?
                    };
                    let last = queue.finished(&chunk.table);
                    match copied {
                        Copied::Done(table) => {
                            progress.chunk_done(&chunk.table.to_string());
                            // The table's last chunk: its indexes are built while other
                            // tables go on copying.
                            if last {
                                copier
                                    .finish_table(
                                        &chunk.table,
                                        Some(table),
                                        planned.indexes_deferred,
                                    )
                                    .await?;
                            }
                        }
                        Copied::Gone => {}
                        Copied::Changed => {
                            changed.insert(chunk.table.clone());
                        }
                    }
                }
                Ok::<_, Error>(changed)
            });
        }
        Ok(())
    }

    /// Records the tables whose chunks are all done but that have no load record yet
    /// (their last chunk finished just before a restart).
    async fn finish_tables(&self, tgt: &mut Conn, todo: &[TableName]) -> Result<()> {
        let loaded: BTreeSet<TableName> = self
            .ctx
            .meta
            .loaded_tables(tgt, &self.ctx.target.addr(), &self.ctx.source.source_id)
            .await?
            .into_iter()
            .map(|(t, _, _)| t.name)
            .collect();
        let mut copier = None;
        for name in todo.iter().filter(|t| !loaded.contains(t)) {
            let c = match &mut copier {
                Some(c) => c,
                None => copier.insert(self.copier(0).await?),
            };
            // A routed table's target may hold other tables' rows: its indexes stay.
            let defer = self.dumper.defer_indexes && self.ctx.router.route(name).is_none();
            c.finish_table(name, None, defer).await?;
        }
        Ok(())
    }

    /// The groups of tables linked by foreign keys among `listed` (none without
    /// `foreign-key-checks`). A group copied in parts (a crash between its tables, or a table
    /// that joined it later) has its records forgotten: it is copied again, whole.
    async fn linked_groups(
        &self,
        src: &mut Conn,
        tgt: &mut Conn,
        listed: &[TableName],
    ) -> Result<Groups> {
        if !self.ctx.foreign_keys {
            return Ok(Groups::default());
        }
        let tables: BTreeSet<TableName> = listed.iter().cloned().collect();
        let schemas: BTreeSet<String> = tables.iter().map(|t| t.schema.clone()).collect();
        let fks = foreign_keys::list(src, Some(&schemas))
            .await
            .map_err(self.src_err())?;
        let groups = Groups::of(&tables, &fks).map_err(|m| Error::Schema {
            table: self.ctx.source.source_id.clone(),
            position: "full phase".into(),
            message: format!("{m}; add the table to the task, or leave foreign-key-checks off"),
        })?;
        let tgt_addr = self.ctx.target.addr();
        let source_id = &self.ctx.source.source_id;
        let loaded: BTreeMap<TableName, BinlogPos> = self
            .ctx
            .meta
            .loaded_tables(tgt, &tgt_addr, source_id)
            .await?
            .into_iter()
            .map(|(t, low, _)| (t.name, low.binlog))
            .collect();
        for group in groups.groups() {
            if let Some(t) = group.iter().find(|t| self.ctx.router.route(t).is_some()) {
                return Err(Error::Schema {
                    table: t.to_string(),
                    position: "full phase".into(),
                    message: "a table linked by foreign keys is routed to another table: its foreign keys would name the source's tables".into(),
                });
            }
            let at: BTreeSet<Option<&BinlogPos>> = group.iter().map(|t| loaded.get(t)).collect();
            if at.len() > 1 {
                tracing::info!(tables = ?group, "tables linked by foreign keys were copied at different positions; copying them again in one snapshot");
                for t in &group {
                    self.ctx
                        .meta
                        .forget_table(tgt, &tgt_addr, source_id, t)
                        .await?;
                }
            }
        }
        Ok(groups)
    }

    /// Copies a group of linked tables in one snapshot on one copier, so that they agree with
    /// each other at one exact position; returns the tables whose columns changed meanwhile
    /// (then the group is copied again). A crash in between leaves it in parts, which
    /// `linked_groups` forgets.
    async fn copy_linked(
        &self,
        src: &mut Conn,
        tgt: &mut Conn,
        group: &BTreeSet<TableName>,
    ) -> Result<BTreeSet<TableName>> {
        let tgt_addr = self.ctx.target.addr();
        let mut planned = Vec::new();
        for name in group {
            self.ctx
                .meta
                .forget_table(tgt, &tgt_addr, &self.ctx.source.source_id, name)
                .await?;
            let estimate = chunk::estimated_rows(src, name)
                .await
                .map_err(self.src_err())?;
            // Their indexes stay: a foreign key needs one, and InnoDB makes its own without.
            if let Some((plan, chunks)) = self.plan_table(src, tgt, name, estimate, false).await? {
                self.show_table(name, &chunks, estimate);
                let plan = Arc::new(plan);
                planned.extend(chunks.into_iter().map(|c| (c, plan.clone())));
            }
        }
        let mut copier = self.copier(0).await?;
        copier.bracketed = false;
        let copied = copier.copy_in_one_snapshot(&mut planned).await?;
        let mut changed = BTreeSet::new();
        let mut models = BTreeMap::new();
        for ((chunk, _), c) in planned.iter().zip(copied) {
            match c {
                Copied::Done(t) => {
                    self.ctx.progress.chunk_done(&chunk.table.to_string());
                    models.insert(chunk.table.clone(), t);
                }
                Copied::Changed => {
                    changed.extend(group.iter().cloned());
                }
                Copied::Gone => {}
            }
        }
        if changed.is_empty() {
            for (name, table) in models {
                copier.finish_table(&name, Some(table), false).await?;
            }
        }
        Ok(changed)
    }

    async fn copier(&self, slot: usize) -> Result<ChunkCopier> {
        let mut copier = ChunkCopier::new(self.ctx.clone(), slot).await?;
        copier.row_condition = self.dumper.row_condition();
        copier.bracketed = self.dumper.consistency().bracketed(self.ctx.flavor);
        Ok(copier)
    }

    /// Creates the target databases of the selected schemas with the source's character
    /// sets: under their own name or the one a schema rule names; none where table rules send
    /// the tables elsewhere (a table that stays there creates its database when it is made).
    async fn create_schemas(&self, src: &mut Conn, tgt: &mut Conn) -> Result<()> {
        for db in list_schemas(src, &self.ctx.filter)
            .await
            .map_err(self.src_err())?
        {
            let to = match self.ctx.router.route_schema(&db) {
                SchemaRoute::Same => db.clone(),
                SchemaRoute::To { schema, .. } => schema,
                SchemaRoute::Away => continue,
            };
            self.create_schema_like(src, tgt, &db, &to).await?;
        }
        Ok(())
    }

    /// Creates the database `to` in the target with the character set and collation of the
    /// source's database `db`.
    async fn create_schema_like(
        &self,
        src: &mut Conn,
        tgt: &mut Conn,
        db: &str,
        to: &str,
    ) -> Result<()> {
        let row: Option<(Vec<u8>, Vec<u8>)> = src
            .exec_first(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (db,),
            )
            .await
            .map_err(self.src_err())?;
        let Some((cs, coll)) = row else {
            // Dropped meanwhile: its DROP DATABASE comes with the binlog.
            return Ok(());
        };
        let name = |b: Vec<u8>| quote_ident(&String::from_utf8_lossy(&b));
        let sql = format!(
            "CREATE DATABASE IF NOT EXISTS {} DEFAULT CHARACTER SET {} COLLATE {}",
            quote_ident(to),
            name(cs),
            name(coll)
        );
        tgt.query_drop(sql).await.map_err(self.tgt_err())
    }
}

/// A snapshot older than an ALTER cannot read the table ("definition has changed"): a new
/// snapshot can.
async fn copy_with_retry(
    copier: &mut ChunkCopier,
    chunk: &mut ChunkRecord,
    planned: &CopyPlan,
) -> Result<Copied> {
    const ATTEMPTS: usize = 3;
    for attempt in 1.. {
        match copier.copy(chunk, planned).await {
            Err(e) if e.errno() == Some(errno::TABLE_DEF_CHANGED) && attempt < ATTEMPTS => {
                tracing::info!(table = %chunk.table, "definition changed during snapshot; reading the chunk again");
            }
            other => return other,
        }
    }
    unreachable!("the loop returns")
}
