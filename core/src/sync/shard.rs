//! The subtask's side of shard DDL coordination (see `crate::shard`): it tells the
//! coordinator which shards its source has, sends each shard's DDL, and goes on when the
//! coordinator releases the shard.
//!
//! Pessimistic mode cannot stop the binlog stream at a shard's DDL: the other shards of the
//! same source are in the same stream and must reach their DDL too. So a shard that sent its
//! DDL is *blocked*: its rows after the DDL are skipped while the stream goes on. Once
//! released, those rows are read again from the binlog (a second reader from the DDL's
//! position up to where the stream is) and applied in safe mode, then the stream goes on.
//! Blocked shards are rebuilt from the MetaStore after a restart; the restarted stream may
//! start before a shard's DDL (it was sent, the checkpoint after it not saved yet): the
//! shard's rows before it are applied as usual, the DDL itself is recognised as the one the
//! shard waits at, and the shard is released only once the stream has passed it.

use super::ddl::SourceStatement;
use super::Dispatcher;
use crate::config::ShardMode;
use crate::error::{Error, Result};
use crate::hooks::ShardId;
use crate::meta::{self, MetaStore};
use crate::position::BinlogPos;
use crate::schema::{Ddl, DdlKind};
use crate::shard::{self, LockState, Members, ShardDdl};
use crate::table::TableName;
use crate::upstream::{BinlogReader, EventKind};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a subtask reaches the coordinator.
#[derive(Clone)]
pub struct ShardSync {
    pub store: Arc<dyn MetaStore>,
    pub mode: ShardMode,
}

/// How often blocked shards look for their release.
const POLL: Duration = Duration::from_millis(200);

pub(super) fn shard_name(t: &TableName) -> String {
    format!("{}.{}", t.schema, t.table)
}

fn parse_shard_name(s: &str) -> TableName {
    let (schema, table) = s.split_once('.').unwrap_or(("", s));
    TableName::new(schema, table)
}

impl Dispatcher<'_> {
    fn shard_sync(&self) -> Option<&ShardSync> {
        self.inc.shard.as_ref()
    }

    /// Whether rows of `table` in a transaction ending at `txn_end` wait for the shard's
    /// release: those after the DDL it waits at.
    pub(super) fn shard_blocked(&self, table: &TableName, txn_end: &BinlogPos) -> bool {
        !self.blocked.is_empty()
            && self
                .blocked
                .get(table)
                .is_some_and(|d| *txn_end > d.position.binlog)
    }

    /// Everything the stream has handed out, fragments of a big transaction included.
    fn stream_end(&self) -> BinlogPos {
        self.dispatched.clone().max(self.cp.position.binlog.clone())
    }

    /// Whether the DDL is on a shard merged into a table with others, under a shard mode.
    pub(super) fn is_shard_ddl(&self, ddl: &Ddl) -> bool {
        self.shard_sync().is_some()
            && ddl
                .tables
                .iter()
                .any(|t| self.inc.ctx.router.route(t).is_some_and(|r| r.merged))
    }

    /// Tells the coordinator every shard of this source (after start, CREATE and DROP).
    pub(super) async fn register_shards(&mut self) -> Result<()> {
        let Some(sync) = self.shard_sync() else {
            return Ok(());
        };
        let mut members: Members = BTreeMap::new();
        for t in self.cp.tracker.tables() {
            if let Some(r) = self.inc.ctx.router.route(&t.name).filter(|r| r.merged) {
                members
                    .entry(shard_name(&r.target))
                    .or_default()
                    .push(shard_name(&t.name));
            }
        }
        let key = shard::member(&self.inc.ctx.task, &self.inc.ctx.source.source_id);
        meta::put_json(sync.store.as_ref(), &key, &members).await
    }

    /// After a restart: the shards of this source still waiting for, or just given, their
    /// release (pessimistic mode).
    pub(super) async fn restore_blocked(&mut self) -> Result<()> {
        let Some(sync) = self.shard_sync().cloned() else {
            return Ok(());
        };
        if sync.mode != ShardMode::Pessimistic {
            return Ok(());
        }
        let store = sync.store.as_ref();
        for prefix in [
            shard::ddl_prefix(&self.inc.ctx.task),
            shard::done_prefix(&self.inc.ctx.task),
        ] {
            for (_, d) in meta::list_json::<ShardDdl>(store, &prefix).await? {
                if d.shard.source != self.inc.ctx.source.source_id {
                    continue;
                }
                // A release not yet caught up and the shard's next DDL (sent while catching
                // up): the shard waits at the earlier one; the later one comes again.
                let table = parse_shard_name(&d.shard.table);
                match self.blocked.get(&table) {
                    Some(e) if e.position.binlog <= d.position.binlog => {}
                    _ => {
                        self.blocked.insert(table, d);
                    }
                }
            }
        }
        if !self.blocked.is_empty() {
            tracing::info!(task = %self.inc.ctx.task, source = %self.inc.ctx.source.source_id, shards = self.blocked.len(), "shards blocked at their DDL");
        }
        Ok(())
    }

    /// A DDL on a merged shard: CREATE and DROP change the shard set; ALTER goes to the
    /// coordinator.
    pub(super) async fn shard_ddl(
        &mut self,
        ddl: &Ddl,
        sql: &str,
        st: &SourceStatement,
    ) -> Result<()> {
        let end = &st.end;
        let at = end.binlog.to_string();
        match ddl.kind {
            DdlKind::CreateTable | DdlKind::DropTable => {
                self.apply_routed_ddl(ddl, sql, st).await?;
                return self.register_shards().await;
            }
            // As in TiDB DM: emptying one shard must not empty the table it is merged into.
            DdlKind::TruncateTable => return self.apply_routed_ddl(ddl, sql, st).await,
            DdlKind::AlterTable => {}
            _ => {
                return Err(Error::UnsupportedDdl {
                    position: at,
                    statement: sql.to_string(),
                    message: "on shards merged under a shard mode, dm coordinates ALTER TABLE (CREATE/DROP INDEX: write them as ALTER TABLE; RENAME is not supported)".into(),
                })
            }
        }
        if !self.ddl_kept(ddl, sql, &end.binlog)? {
            return self.ddl_filtered_out(ddl, sql, st).await;
        }
        let table = ddl.tables[0].clone();
        if self
            .blocked
            .get(&table)
            .is_some_and(|d| d.position.binlog == end.binlog)
        {
            // The DDL the shard waits at, read again after a restart: sent already; the
            // tracked schema (from a checkpoint before it) takes it now.
            if let Err(message) = ddl.apply(&mut self.cp.tracker) {
                tracing::warn!(position = %at, statement = sql, error = %message, "tracked schema not updated");
            }
            return self.checkpoint_after_ddl(st).await;
        }
        if self.blocked.contains_key(&table) {
            self.shard_polled = Instant::now() - POLL;
            self.poll_blocked().await?;
        }
        if self.blocked.contains_key(&table) {
            // Held like the shard's rows: it comes again when they are applied.
            tracing::info!(position = %at, statement = sql, "DDL of a shard waiting at an earlier DDL: held");
            if st.ends_txn {
                self.cp.position = end.clone();
                self.dirty = true;
            }
            return Ok(());
        }
        let info = self.send_shard_ddl(ddl, sql, st).await?;
        let sync = self.shard_sync().cloned().expect("shard mode");
        let store = sync.store.as_ref();
        let done_key = shard::done(&self.inc.ctx.task, &info.target, &info.shard);
        match sync.mode {
            ShardMode::Pessimistic => {
                self.blocked.insert(table, info);
            }
            ShardMode::Optimistic => loop {
                if let Some(d) = meta::get_json::<ShardDdl>(store, &done_key).await? {
                    if d.position == *end {
                        store.delete(&done_key).await?;
                        break;
                    }
                }
                self.check_conflict(store, &info).await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            },
        }
        self.checkpoint_after_ddl(st).await
    }

    /// Sends a shard's ALTER to the coordinator (unless it is there already: after a restart,
    /// or replaced by a user) and applies it to the tracked schema.
    async fn send_shard_ddl(
        &mut self,
        ddl: &Ddl,
        sql: &str,
        st: &SourceStatement,
    ) -> Result<ShardDdl> {
        let end = &st.end;
        let at = end.binlog.to_string();
        let table = ddl.tables[0].clone();
        let routed = self.inc.ctx.router.route(&table).expect("merged shard");
        let target = shard_name(&routed.target);
        let shard = ShardId {
            source: self.inc.ctx.source.source_id.clone(),
            table: shard_name(&table),
        };
        // Optimistic mode decides change by change (additions now, drops last).
        let ddls = match self.shard_sync().map(|s| s.mode) {
            Some(ShardMode::Optimistic) => ddl.split_renamed_to(&routed.target),
            _ => ddl.renamed_to(&routed.target).map(|s| vec![s]),
        }
        .ok_or_else(|| Error::UnsupportedDdl {
            position: at.clone(),
            statement: sql.to_string(),
            message: "cannot rewrite it for the merged table".into(),
        })?;
        let info = ShardDdl {
            shard: shard.clone(),
            target: target.clone(),
            ddls,
            original: sql.to_string(),
            position: end.clone(),
            seq: crate::status::now_micros(),
            context: Some(st.context.clone()),
        };
        let store = self.shard_sync().expect("shard mode").store.clone();
        let ddl_key = shard::ddl(&self.inc.ctx.task, &target, &shard);
        let done_key = shard::done(&self.inc.ctx.task, &target, &shard);
        let same = |d: &Option<ShardDdl>| d.as_ref().is_some_and(|d| d.position == *end);
        let done = meta::get_json(store.as_ref(), &done_key).await?;
        let sent = meta::get_json(store.as_ref(), &ddl_key).await?;
        let info = if same(&done) {
            done.unwrap()
        } else if same(&sent) {
            sent.unwrap()
        } else {
            meta::put_json(store.as_ref(), &ddl_key, &info).await?;
            tracing::info!(task = %self.inc.ctx.task, shard = %shard, target = %target, position = %at, statement = sql, "shard DDL sent to the coordinator");
            crate::failpoint::pause("after-shard-ddl-sent").await;
            info
        };
        if let Err(message) = ddl.apply(&mut self.cp.tracker) {
            tracing::warn!(position = %at, statement = sql, error = %message, "tracked schema not updated");
        }
        self.plans.clear();
        Ok(info)
    }

    async fn check_conflict(&self, store: &dyn MetaStore, d: &ShardDdl) -> Result<()> {
        let lock: Option<LockState> =
            meta::get_json(store, &shard::lock(&self.inc.ctx.task, &d.target)).await?;
        match lock.and_then(|l| l.conflict) {
            Some(c) if c.shards.contains(&d.shard) => Err(Error::ShardDdl {
                target: d.target.clone(),
                position: d.position.binlog.to_string(),
                message: c.message,
            }),
            _ => Ok(()),
        }
    }

    /// At a transaction boundary: blocked shards that were released get their rows after the
    /// DDL applied now; a conflict on a blocked shard stops the subtask.
    pub(super) async fn poll_blocked(&mut self) -> Result<()> {
        if self.blocked.is_empty() || self.shard_polled.elapsed() < POLL {
            return Ok(());
        }
        self.shard_polled = Instant::now();
        let sync = self.shard_sync().cloned().expect("shard mode");
        let store = sync.store.as_ref();
        let done: Vec<ShardDdl> =
            meta::list_json::<ShardDdl>(store, &shard::done_prefix(&self.inc.ctx.task))
                .await?
                .into_iter()
                .map(|(_, d)| d)
                .filter(|d| d.shard.source == self.inc.ctx.source.source_id)
                .collect();
        // A shard whose DDL the stream has not reached again (after a restart) is released
        // once it has: its rows before the DDL come through the stream.
        let until = self.stream_end();
        let mut released = BTreeMap::new();
        for (table, info) in &self.blocked {
            match done
                .iter()
                .find(|d| d.shard == info.shard && d.position == info.position)
            {
                Some(d) if d.position.binlog <= until => {
                    released.insert(table.clone(), d.clone());
                }
                Some(_) => {}
                None => self.check_conflict(store, info).await?,
            }
        }
        if released.is_empty() {
            return Ok(());
        }
        self.resync(released).await
    }

    /// A DDL met while applying held rows: on a shard being caught up, it is that shard's next
    /// DDL, sent now; the shard waits at it again.
    async fn held_ddl(
        &mut self,
        db: &str,
        sql: &str,
        st: &SourceStatement,
        active: &mut BTreeMap<TableName, ShardDdl>,
    ) -> Result<()> {
        let end = &st.end;
        let Ok(Some(ddl)) = crate::schema::parse_ddl(db, sql) else {
            return Ok(());
        };
        // A DDL of a shard being caught up, after the one it waited at.
        let Some(table) = ddl
            .tables
            .first()
            .filter(|t| {
                active
                    .get(*t)
                    .is_some_and(|d| end.binlog > d.position.binlog)
            })
            .cloned()
        else {
            return Ok(());
        };
        if ddl.kind != DdlKind::AlterTable {
            return Err(Error::UnsupportedDdl {
                position: end.binlog.to_string(),
                statement: sql.to_string(),
                message: "only ALTER TABLE can follow a shard DDL before the shard is released"
                    .into(),
            });
        }
        // Rows before it go out first; rows after it wait for the new lock.
        self.send_pending(&end.binlog).await?;
        self.flush_workers().await?;
        let info = self.send_shard_ddl(&ddl, sql, st).await?;
        active.remove(&table);
        self.blocked.insert(table, info);
        Ok(())
    }

    /// Applies the rows the released shards (with the `done` record of each release) wrote
    /// after their DDL, up to the stream's position, then lets the stream go on.
    async fn resync(&mut self, infos: BTreeMap<TableName, ShardDdl>) -> Result<()> {
        let until = self.stream_end();
        let from = infos
            .values()
            .map(|d| &d.position)
            .min_by(|a, b| a.binlog.cmp(&b.binlog))
            .cloned()
            .expect("released shards");
        tracing::info!(task = %self.inc.ctx.task, shards = infos.len(), from = %from.binlog, until = %until, "shards released: applying their rows held since the DDL");
        // Released shards still being caught up (a held DDL blocks a shard again).
        let mut active = infos.clone();
        self.flush_workers().await?;
        if from.binlog < until {
            let mut reader = BinlogReader::open(
                &self.inc.ctx.source,
                self.inc.ctx.flavor,
                &from,
                self.inc.ctx.source.enable_gtid,
                self.inc.ctx.filter.clone(),
                &self.inc.origin.sub_reader("shard-resync"),
            )
            .await?;
            let mut heard = Instant::now();
            loop {
                let Some(txn) = reader.next_txn().await? else {
                    // Quiet: the stream has everything up to `until`; wait for it.
                    if heard.elapsed() > Duration::from_secs(60) {
                        return Err(Error::Binlog {
                            source_id: self.inc.ctx.source.source_id.clone(),
                            position: until.to_string(),
                            message: "reading the held rows of released shards stalled".into(),
                            retryable: true,
                        });
                    }
                    continue;
                };
                heard = Instant::now();
                if txn.end.binlog > until {
                    break;
                }
                for ev in txn.events {
                    let (table, op, rows) = match ev.kind {
                        EventKind::Rows { table, op, rows } => (table, op, rows),
                        EventKind::Query {
                            db, sql, context, ..
                        } => {
                            // Sent like the stream's own: in its source session.
                            let st = SourceStatement::within(&txn.end, *context);
                            self.held_ddl(&db, &sql, &st, &mut active).await?;
                            continue;
                        }
                        // Paused on when the stream first passed it.
                        EventKind::Unsupported { .. } => continue,
                    };
                    let Some(d) = active.get(&table) else {
                        continue;
                    };
                    if txn.end.binlog <= d.position.binlog
                        || !self.event_kept(
                            &table.schema,
                            Some(&table.table),
                            super::dml_kind(op),
                            None,
                            &txn.end.binlog,
                        )?
                    {
                        continue;
                    }
                    // Safe mode: a restart may apply them a second time. (No table is
                    // linked in shard mode: the task file refuses foreign-key-checks.)
                    let event_end = BinlogPos {
                        name: txn.end.binlog.name.clone(),
                        pos: ev.pos,
                    };
                    let run = super::TableRun {
                        table,
                        events: vec![super::RowsEvent {
                            op,
                            rows,
                            end: event_end,
                        }],
                    };
                    self.dispatch_rows(run, &txn.end.binlog, true).await?;
                }
                self.send_pending(&txn.end.binlog).await?;
                if txn.end.binlog == until {
                    break;
                }
            }
        }
        self.flush_workers().await?;
        let sync = self.shard_sync().cloned().expect("shard mode");
        for (table, d) in infos {
            if active.contains_key(&table) {
                self.blocked.remove(&table);
            }
            // Only this release (as the coordinator wrote it): a DDL sent since may have been
            // released too.
            let old = serde_json::to_vec(&d).unwrap_or_default();
            sync.store
                .compare_and_delete(&shard::done(&self.inc.ctx.task, &d.target, &d.shard), &old)
                .await?;
        }
        self.dirty = true;
        self.checkpoint().await
    }
}
