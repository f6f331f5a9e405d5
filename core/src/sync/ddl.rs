//! DDL in the incremental phase: decide whether the task migrates the objects it touches,
//! commit everything before it, run it on the target, update the tracked schema and
//! checkpoint right after it.
//!
//! The target commits DDL on its own, so a kill between the DDL and its checkpoint replays
//! the DDL: errors that only say "already done" (table exists, duplicate column, ...) are
//! therefore accepted.

use super::Dispatcher;
use crate::db::quote_ident;
use crate::error::{errno, DbRole, Error, NotApplied, Result};
use crate::position::{BinlogPos, Position};
use crate::rules::SchemaRoute;
use crate::schema::{
    classify_statement, parse_ddl, unparsed_table_ddl, Ddl, DdlKind, DmlVerb, StatementClass,
};
use crate::table::TableName;
use crate::upstream::{Baseline, StatementContext};
use mysql_async::prelude::Queryable;

/// A statement of the source's binlog on its way to the target, with what its handling
/// needs besides the text.
#[derive(Debug, Clone)]
pub(super) struct SourceStatement {
    /// The end of its transaction.
    pub end: Position,
    /// It is the last event of a whole transaction, so the checkpoint may move past it: not
    /// so for CREATE TABLE ... SELECT (its rows follow in the same transaction), nor for one
    /// of several statements a binlog operator or an online schema change runs.
    pub ends_txn: bool,
    /// The session it ran in on the source (sql_mode, time zone, character sets, ...).
    pub context: StatementContext,
    /// Its bytes, when they are not UTF-8 and it runs whole.
    pub raw: Option<Vec<u8>>,
}

impl SourceStatement {
    /// A statement dm runs at `end` on the source's behalf (an operator's, a swap's), in no
    /// particular session, with the checkpoint kept before `end`.
    pub fn within(end: &Position, context: StatementContext) -> Self {
        SourceStatement {
            end: end.clone(),
            ends_txn: false,
            context,
            raw: None,
        }
    }
}

/// Server errors that mean the DDL's effect is already there.
const ALREADY_DONE: &[u16] = &[
    errno::TABLE_EXISTS,
    errno::BAD_TABLE,
    errno::DUP_FIELDNAME,
    errno::DUP_KEYNAME,
    errno::CANT_DROP_FIELD_OR_KEY,
    errno::DB_CREATE_EXISTS,
    errno::DB_DROP_EXISTS,
    errno::MULTIPLE_PRI_KEY,
];

impl Dispatcher<'_> {
    fn ddl_selected(&self, ddl: &Ddl, txn_end: &BinlogPos) -> bool {
        let f = &self.inc.ctx.filter;
        match ddl.kind {
            DdlKind::CreateDatabase | DdlKind::DropDatabase | DdlKind::AlterDatabase => {
                ddl.database.as_deref().is_some_and(|d| f.allows_schema(d))
            }
            // A merged shard's DDL counts even where its copy already had it: the shard
            // coordination waits for every shard's statement.
            _ => {
                let shard = self.is_shard_ddl(ddl);
                ddl.tables.iter().any(|t| {
                    f.allows_table(&t.schema, &t.table) && (shard || !self.in_snapshot(t, txn_end))
                })
            }
        }
    }

    /// Whether the event filters keep a DDL: every table it touches (or its database) must
    /// keep it. An ALTER TABLE whose changes the filters partly keep (by TiDB DM's finer
    /// names, `drop column`, ...) cannot be split on a routed or merged table: refused with
    /// the fix.
    pub(super) fn ddl_kept(&self, ddl: &Ddl, sql: &str, at: &BinlogPos) -> Result<bool> {
        let kept = self.changes_kept(ddl, sql, at)?;
        if kept.iter().all(|k| *k) {
            return Ok(true);
        }
        if kept.iter().all(|k| !*k) {
            return Ok(false);
        }
        Err(Error::UnsupportedDdl {
            position: at.to_string(),
            statement: sql.to_string(),
            message: "the event filters keep some changes of this ALTER TABLE and drop others, on a routed or merged table where dm cannot split it; run the changes to keep with `dm ctl binlog replace`".into(),
        })
    }

    /// Per change of an ALTER TABLE (one entry for any other statement): whether the event
    /// filters keep it, as TiDB DM filters the ALTERs it splits into one change each.
    fn changes_kept(&self, ddl: &Ddl, sql: &str, at: &BinlogPos) -> Result<Vec<bool>> {
        if let (DdlKind::AlterTable, Some(changes)) = (ddl.kind, ddl.alter_changes()) {
            if !changes.is_empty() {
                let t = &ddl.tables[0];
                return changes
                    .into_iter()
                    .map(|names| {
                        let kind = crate::rules::EventKind::AlterChange(names);
                        self.event_kept(&t.schema, Some(&t.table), kind, Some(sql), at)
                    })
                    .collect();
            }
        }
        Ok(vec![self.statement_kept(ddl, sql, at)?])
    }

    fn statement_kept(&self, ddl: &Ddl, sql: &str, at: &BinlogPos) -> Result<bool> {
        let kind = crate::rules::EventKind::Ddl(match ddl.kind {
            DdlKind::CreateDatabase => "create database",
            DdlKind::DropDatabase => "drop database",
            DdlKind::AlterDatabase => "alter database",
            DdlKind::CreateTable => "create table",
            DdlKind::DropTable => "drop table",
            DdlKind::AlterTable => "alter table",
            DdlKind::RenameTable => "rename table",
            DdlKind::TruncateTable => "truncate table",
            DdlKind::CreateIndex => "create index",
            DdlKind::DropIndex => "drop index",
        });
        if ddl.tables.is_empty() {
            let db = ddl.database.as_deref().unwrap_or_default();
            return self.event_kept(db, None, kind, Some(sql), at);
        }
        for t in &ddl.tables {
            if !self.event_kept(&t.schema, Some(&t.table), kind, Some(sql), at)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub(super) async fn apply_query(
        &mut self,
        db: &str,
        sql: &str,
        st: &SourceStatement,
    ) -> Result<()> {
        let end = &st.end;
        let at = end.binlog.to_string();
        let ddl = match parse_ddl(db, sql) {
            Ok(None) => return self.non_ddl(db, sql, &end.binlog),
            Ok(Some(d)) => d,
            Err(message) => match unparsed_table_ddl(db, sql) {
                Some((table, kind)) if self.online_role(&table).is_some() => {
                    let role = self.online_role(&table).expect("checked above");
                    return self
                        .online_statement(kind, db, sql, &table, &role, st)
                        .await;
                }
                Some((table, kind)) if self.inc.ctx.router.route(&table).is_none() => {
                    return self.apply_unparsed(db, sql, table, kind, st).await
                }
                // Unknown, or on a routed table (its name would need rewriting).
                _ => {
                    return Err(Error::UnsupportedDdl {
                        position: at,
                        statement: sql.to_string(),
                        message,
                    })
                }
            },
        };
        if let Some(roles) = self.online_roles(&ddl) {
            return self.online_ddl(&ddl, db, sql, roles, st).await;
        }
        if !self.ddl_selected(&ddl, &end.binlog) {
            return Ok(());
        }
        // A barrier: everything before the DDL is applied and checkpointed first.
        self.checkpoint().await?;
        if let (Some(db), true) = (&ddl.database, ddl.tables.is_empty()) {
            return self.apply_database_ddl(&ddl, db, sql, st).await;
        }
        if self.is_shard_ddl(&ddl) {
            return self.shard_ddl(&ddl, sql, st).await;
        }
        if ddl
            .tables
            .iter()
            .any(|t| self.inc.ctx.router.route(t).is_some())
        {
            return self.apply_routed_ddl(&ddl, sql, st).await;
        }
        let kept = self.changes_kept(&ddl, sql, &end.binlog)?;
        if kept.iter().all(|k| !*k) {
            return self.ddl_filtered_out(&ddl, sql, st).await;
        }
        if kept.iter().any(|k| !*k) {
            return self.apply_kept_changes(&ddl, sql, &kept, st).await;
        }
        if ddl.kind == DdlKind::CreateTable {
            self.create_database_away(&ddl.tables[0].schema, st).await?;
        }
        self.run_source_statement(ddl.default_db(), sql, st).await?;
        if let Err(message) = ddl.apply(&mut self.cp.tracker) {
            // The target ran the same statement: its definition is the truth.
            let mut found = false;
            for t in &ddl.tables {
                let te = self.tgt_err();
                if let Some(table) = crate::schema::load_table(&mut self.conn, t)
                    .await
                    .map_err(te)?
                {
                    self.cp.tracker.insert(table);
                    found = true;
                }
            }
            if !found {
                return Err(Error::UnsupportedDdl {
                    position: at,
                    statement: sql.to_string(),
                    message,
                });
            }
        }
        tracing::info!(position = %at, statement = sql, "DDL applied");
        self.checkpoint_after_ddl(st).await
    }

    /// CREATE/ALTER/DROP DATABASE, on the database a schema rule names (TiDB DM's routes).
    /// None where table rules send the database's tables elsewhere (a table that stays
    /// creates it); no DROP of a database other databases are merged into (it would remove
    /// their tables).
    async fn apply_database_ddl(
        &mut self,
        ddl: &Ddl,
        db: &str,
        sql: &str,
        st: &SourceStatement,
    ) -> Result<()> {
        let end = &st.end;
        let at = end.binlog.to_string();
        if !self.ddl_kept(ddl, sql, &end.binlog)? {
            return self.ddl_filtered_out(ddl, sql, st).await;
        }
        let to = match self.inc.ctx.router.route_schema(db) {
            SchemaRoute::Same => Some(db.to_string()),
            SchemaRoute::To { merged: true, .. } if ddl.kind == DdlKind::DropDatabase => {
                tracing::warn!(position = %at, statement = sql, "DDL not applied: other databases are merged into its target");
                None
            }
            SchemaRoute::To { schema, .. } => Some(schema),
            SchemaRoute::Away if ddl.kind == DdlKind::CreateDatabase => {
                tracing::info!(position = %at, statement = sql, "database not created: routes send its tables to other databases");
                None
            }
            // Created by a table that stays in it, or never.
            SchemaRoute::Away => {
                let te = self.tgt_err();
                let exists: Option<u8> = self
                    .conn
                    .exec_first(
                        "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                        (db,),
                    )
                    .await
                    .map_err(te)?;
                exists.map(|_| db.to_string())
            }
        };
        if let Some(stmt) = to.and_then(|to| ddl.database_statement_for(&to)) {
            self.run_on_target("", &stmt, st).await?;
            tracing::info!(position = %at, statement = %stmt, "DDL applied");
        }
        if let Err(message) = ddl.apply(&mut self.cp.tracker) {
            // A database statement changes no tracked column: nothing decodes differently.
            tracing::warn!(position = %at, statement = sql, %message, "tracked schema not changed");
        }
        if ddl.kind == DdlKind::DropDatabase {
            // Its tables are gone: shards of merged tables among them too.
            self.register_shards().await?;
        }
        self.checkpoint_after_ddl(st).await
    }

    /// A table created in a database whose CREATE DATABASE was left out (routes send its
    /// other tables elsewhere) creates the database.
    async fn create_database_away(&mut self, db: &str, st: &SourceStatement) -> Result<()> {
        if self.inc.ctx.router.route_schema(db) != SchemaRoute::Away {
            return Ok(());
        }
        let sql = format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(db));
        self.run_on_target("", &sql, st).await
    }

    /// A statement that is not table DDL passes only when it changes nothing dm migrates or
    /// writes only tables the task's rules leave out; anything else pauses the task.
    fn non_ddl(&self, db: &str, sql: &str, end: &BinlogPos) -> Result<()> {
        let (reason, message) = match classify_statement(db, sql) {
            StatementClass::Irrelevant(why) => {
                tracing::debug!(position = %end, statement = sql, why, "statement passed over");
                return Ok(());
            }
            StatementClass::Dml { verb, tables } if !tables.is_empty() => {
                let kind = match verb {
                    DmlVerb::Insert => Some(crate::rules::EventKind::Insert),
                    DmlVerb::Update => Some(crate::rules::EventKind::Update),
                    DmlVerb::Delete => Some(crate::rules::EventKind::Delete),
                    DmlVerb::Other => None,
                };
                let mut left_out = true;
                for t in &tables {
                    let filtered = !self.inc.ctx.filter.allows_table(&t.schema, &t.table)
                        || self.in_snapshot(t, end)
                        || match kind {
                            Some(k) => !self.event_kept(&t.schema, Some(&t.table), k, None, end)?,
                            None => false,
                        };
                    left_out &= filtered;
                }
                if left_out {
                    tracing::debug!(position = %end, statement = sql, "statement on tables the task leaves out");
                    return Ok(());
                }
                (
                    NotApplied::StatementDml,
                    format!(
                        "row changes of {} logged as a statement, not as rows",
                        tables
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            }
            StatementClass::Dml { .. } => (
                NotApplied::StatementDml,
                "row changes logged as a statement, not as rows".to_string(),
            ),
            StatementClass::Unknown => (
                NotApplied::UnknownStatement,
                "dm cannot tell what this statement changes".to_string(),
            ),
        };
        Err(Error::NotApplied {
            reason,
            what: format!("statement `{}`", crate::error::shorten(sql, 500)),
            position: end.to_string(),
            message,
        })
    }

    /// A DDL on routed tables runs on their targets: ALTER and CREATE renamed (a shard's
    /// ALTER that another shard already applied to the merged table is "already done"),
    /// DROP and TRUNCATE only where one table maps to one table; on merged tables they, and
    /// RENAME, would hit every shard's rows and are left out.
    pub(super) async fn apply_routed_ddl(
        &mut self,
        ddl: &Ddl,
        sql: &str,
        st: &SourceStatement,
    ) -> Result<()> {
        let end = &st.end;
        let at = end.binlog.to_string();
        if !self.ddl_kept(ddl, sql, &end.binlog)? {
            return self.ddl_filtered_out(ddl, sql, st).await;
        }
        for t in &ddl.tables {
            let Some(r) = self.inc.ctx.router.route(t) else {
                continue;
            };
            let target = &r.target;
            let stmt = match (ddl.renamed_to(target), ddl.kind) {
                (Some(s), _) => Some(s),
                (None, DdlKind::DropTable) if !r.merged => {
                    Some(format!("DROP TABLE IF EXISTS {}", target.quoted()))
                }
                (None, DdlKind::TruncateTable) if !r.merged => {
                    Some(format!("TRUNCATE TABLE {}", target.quoted()))
                }
                _ => None,
            };
            match stmt {
                Some(stmt) => {
                    self.run_on_target(
                        "",
                        &format!(
                            "CREATE DATABASE IF NOT EXISTS {}",
                            quote_ident(&target.schema)
                        ),
                        st,
                    )
                    .await?;
                    self.run_on_target("", &stmt, st).await?;
                    if ddl.kind == DdlKind::CreateTable {
                        for (col, _) in &r.extra {
                            let add = format!(
                                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} VARCHAR(255) NOT NULL DEFAULT ''",
                                target.quoted(),
                                quote_ident(col)
                            );
                            self.run_on_target("", &add, st).await?;
                        }
                    }
                    tracing::info!(position = %at, statement = %stmt, "DDL applied to the routed table");
                }
                None => {
                    tracing::warn!(position = %at, statement = sql, target = %target, "DDL not applied: its table is routed to a table other tables are merged into");
                }
            }
        }
        // The source's tables changed either way: the tracker follows them.
        if let Err(message) = ddl.apply(&mut self.cp.tracker) {
            tracing::warn!(position = %at, statement = sql, error = %message, "tracked schema not updated");
        }
        self.checkpoint_after_ddl(st).await
    }

    /// A DDL the event filters leave out: not run on the target, but the source's tables did
    /// change, so the tracker follows them (their rows still decode).
    pub(super) async fn ddl_filtered_out(
        &mut self,
        ddl: &Ddl,
        sql: &str,
        st: &SourceStatement,
    ) -> Result<()> {
        let end = &st.end;
        if let Err(message) = ddl.apply(&mut self.cp.tracker) {
            // The table's next rows say whether this matters (DM-SCHEMA-6002 if they no
            // longer match).
            tracing::warn!(position = %end.binlog, statement = sql, %message, "DDL filtered out; tracked schema not changed");
        }
        tracing::info!(position = %end.binlog, statement = sql, "DDL filtered out");
        self.checkpoint_after_ddl(st).await
    }

    /// An ALTER TABLE some of whose changes the event filters drop: the others run on the
    /// target one statement each (TiDB DM splits ALTERs the same way); the tracked schema
    /// follows the source, all changes.
    async fn apply_kept_changes(
        &mut self,
        ddl: &Ddl,
        sql: &str,
        kept: &[bool],
        st: &SourceStatement,
    ) -> Result<()> {
        let end = &st.end;
        let at = end.binlog.to_string();
        let statements =
            ddl.split_renamed_to(&ddl.tables[0])
                .ok_or_else(|| Error::UnsupportedDdl {
                    position: at.clone(),
                    statement: sql.to_string(),
                    message: "cannot split this ALTER TABLE into one statement per change".into(),
                })?;
        // The source's bytes are the whole statement: the parts run as dm renders them.
        for (stmt, keep) in statements.iter().zip(kept) {
            if *keep {
                self.run_on_target(ddl.default_db(), stmt, st).await?;
                tracing::info!(position = %at, statement = %stmt, "DDL change applied");
            } else {
                tracing::info!(position = %at, statement = %stmt, "DDL change filtered out");
            }
        }
        // The target's definition now differs from the source's: only the statement can say
        // what the source's table became.
        if let Err(message) = ddl.apply(&mut self.cp.tracker) {
            return Err(Error::UnsupportedDdl {
                position: at,
                statement: sql.to_string(),
                message: format!("the source's table after this ALTER is unknown: {message}; fix the tracked schema with `dm ctl binlog-schema update`"),
            });
        }
        self.checkpoint_after_ddl(st).await
    }

    /// The DDL's transaction is done: checkpoint right after it, with the changed schema.
    pub(super) async fn checkpoint_after_ddl(&mut self, st: &SourceStatement) -> Result<()> {
        self.schema_changed(st);
        if !st.ends_txn {
            // Rows of the same transaction follow; the checkpoint comes after them.
            return Ok(());
        }
        self.checkpoint().await
    }

    /// An ALTER or CREATE TABLE the parser does not know: the target runs it and tells the
    /// new model.
    async fn apply_unparsed(
        &mut self,
        db: &str,
        sql: &str,
        table: TableName,
        kind: DdlKind,
        st: &SourceStatement,
    ) -> Result<()> {
        let end = &st.end;
        let at = end.binlog.to_string();
        let f = &self.inc.ctx.filter;
        if !f.allows_table(&table.schema, &table.table) || self.in_snapshot(&table, &end.binlog) {
            return Ok(());
        }
        self.checkpoint().await?;
        let kind = crate::rules::EventKind::Ddl(if kind == DdlKind::CreateTable {
            "create table"
        } else {
            "alter table"
        });
        if !self.event_kept(
            &table.schema,
            Some(&table.table),
            kind,
            Some(sql),
            &end.binlog,
        )? {
            tracing::warn!(position = %at, statement = sql, "DDL filtered out; dm cannot track what it changes");
            return Ok(());
        }
        self.run_source_statement(db, sql, st).await?;
        let te = self.tgt_err();
        match crate::schema::load_table(&mut self.conn, &table)
            .await
            .map_err(te)?
        {
            Some(t) => self.cp.tracker.insert(t),
            None => {
                return Err(Error::UnsupportedDdl {
                    position: at,
                    statement: sql.to_string(),
                    message: format!("{table} is not in the target after the statement"),
                })
            }
        }
        tracing::info!(position = %at, statement = sql, "DDL applied (definition read back from the target)");
        self.checkpoint_after_ddl(st).await
    }

    /// Runs a statement dm wrote (not the source's bytes) in the source statement's session.
    async fn run_on_target(
        &mut self,
        default_db: &str,
        sql: &str,
        st: &SourceStatement,
    ) -> Result<()> {
        self.run_on_target_as(default_db, sql, None, st).await
    }

    /// Runs the source's own statement. Its text reaches dm as UTF-8; a statement whose bytes
    /// are not (written under `SET NAMES gbk`, say) runs as the bytes the source logged, read
    /// in the client character set the source read them in, so comments, defaults and ENUM
    /// members keep their characters.
    async fn run_source_statement(
        &mut self,
        default_db: &str,
        sql: &str,
        st: &SourceStatement,
    ) -> Result<()> {
        match (&st.raw, st.context.client_charset) {
            (Some(bytes), Some(cs)) => {
                self.run_on_target_as(default_db, sql, Some((bytes, cs)), st)
                    .await
            }
            _ => self.run_on_target_as(default_db, sql, None, st).await,
        }
    }

    async fn run_on_target_as(
        &mut self,
        default_db: &str,
        sql: &str,
        raw: Option<(&[u8], u16)>,
        st: &SourceStatement,
    ) -> Result<()> {
        let at = &st.end.binlog.to_string();
        crate::failpoint::pause("before-ddl").await;
        // A worker that lost its lease (frozen, cut off) must not run a DDL it still held:
        // the source's new owner may have written since.
        self.inc.ctx.fence.check()?;
        let addr = self.inc.ctx.target.addr();
        let te = |e| Error::db(DbRole::Target, &addr, e);
        if self.ddl_session.is_none() {
            let mut conn = crate::db::connect(&self.inc.ctx.target, DbRole::Target).await?;
            // Held like the dispatcher's: a new owner of the source ends this session too.
            let lock = crate::session_lock::SessionLock::of(
                &self.inc.ctx.meta,
                &self.inc.ctx.source.source_id,
                crate::session_lock::DDL_SESSION,
            );
            crate::session_lock::take_lock(&mut conn, &addr, &lock).await?;
            let baseline = Baseline::read(&mut conn).await.map_err(te)?;
            self.ddl_session = Some((conn, baseline));
        }
        let (conn, baseline) = self.ddl_session.as_mut().expect("opened above");
        // The source statement's session: sql_mode, time zone, collations, timestamp, ...
        let set = st.context.set_statement(baseline);
        if let Err(e) = conn.query_drop(set.as_str()).await {
            return Err(Error::db(DbRole::Target, &addr, e).during(
                format_args!("while putting the target session into the source statement's session (`{set}`) for the DDL at {at}"),
                at,
            ));
        }
        if !default_db.is_empty() {
            let use_db = format!("USE {}", quote_ident(default_db));
            match conn.query_drop(use_db).await {
                Ok(()) => {}
                Err(mysql_async::Error::Server(e)) if e.code == errno::BAD_DB => {}
                Err(e) => return Err(Error::db(DbRole::Target, &addr, e)),
            }
        }
        let ran = match raw {
            Some((bytes, charset)) => {
                // The id of the client's character set (any collation id of it works).
                let client = format!("SET character_set_client = {charset}");
                match conn.query_drop(client).await {
                    Ok(()) => {
                        let r = conn.query_drop(bytes).await;
                        conn.query_drop("SET character_set_client = 'utf8mb4'")
                            .await
                            .map_err(te)?;
                        r
                    }
                    Err(e) => Err(e),
                }
            }
            None => conn.query_drop(sql).await,
        };
        match ran {
            Ok(()) => Ok(()),
            Err(mysql_async::Error::Server(e)) if ALREADY_DONE.contains(&e.code) => {
                tracing::warn!(position = at, statement = sql, error = %e.message, "DDL already applied on the target");
                Ok(())
            }
            Err(e) => Err(Error::db(DbRole::Target, &addr, e)
                .during(format_args!("while running DDL at {at}: `{sql}`"), at)),
        }
    }
}
