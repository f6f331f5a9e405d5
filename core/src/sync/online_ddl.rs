//! gh-ost and pt-online-schema-change on the source (`online-ddl`, see
//! `crate::rules::online_ddl`). Both copy the table into a shadow table, ALTER the copy,
//! keep it current (gh-ost from the binlog, pt-osc by triggers) and swap it in with a RENAME.
//! Here:
//!
//! - rows of shadow and trash tables never reach the dispatcher (the block-allow list leaves
//!   them out): the copy costs the target nothing;
//! - a statement on a shadow table is recorded, written for the real table, in the checkpoint
//!   (saved with the position after it: a restart or failover keeps it);
//! - the swap (`RENAME TABLE t TO _t_del, _t_gho TO t`, or gh-ost's two-step variant) applies
//!   the recorded statements to the real table, one each, in order and in the session each
//!   ran in on the source, through the DDL path every ALTER takes (routes, filters, shard
//!   coordination); the real table's rename to the trash name is not applied;
//! - a shadow table dropped before its swap (an abandoned run) takes its record with it.

use super::ddl::SourceStatement;
use super::Dispatcher;
use crate::checkpoint::online_ddl::{key, OnlineDdl, RecordedDdl};
use crate::error::{Error, Result};
use crate::rules::online_ddl::tool_of;
use crate::rules::TableRole;
use crate::schema::retarget::{combine_alters, retarget};
use crate::schema::{Ddl, DdlKind};
use crate::status::OnlineDdlStatus;
use crate::table::TableName;

impl Dispatcher<'_> {
    /// The role of each table the DDL changes when one of them is a shadow or trash table
    /// (CREATE TABLE ... LIKE changes only the first table it names).
    pub(super) fn online_roles(&self, ddl: &Ddl) -> Option<Vec<TableRole>> {
        let rules = self.inc.ctx.filter.online_ddl()?;
        let changed = match ddl.kind {
            DdlKind::CreateTable => &ddl.tables[..1.min(ddl.tables.len())],
            _ => &ddl.tables[..],
        };
        let roles: Vec<TableRole> = changed.iter().map(|t| rules.role(&t.table)).collect();
        roles.iter().any(|r| *r != TableRole::Real).then_some(roles)
    }

    /// The role of a shadow or trash table; `None` for a real one.
    pub(super) fn online_role(&self, table: &TableName) -> Option<TableRole> {
        let role = self.inc.ctx.filter.online_ddl()?.role(&table.table);
        (role != TableRole::Real).then_some(role)
    }

    /// A DDL on a shadow or trash table (among others, for RENAME).
    pub(super) async fn online_ddl(
        &mut self,
        ddl: &Ddl,
        db: &str,
        sql: &str,
        roles: Vec<TableRole>,
        st: &SourceStatement,
    ) -> Result<()> {
        let end = &st.end;
        if ddl.kind == DdlKind::RenameTable {
            return self.online_rename(ddl, sql, &roles, st).await;
        }
        let tables = ddl.tables.iter().zip(&roles);
        let f = &self.inc.ctx.filter;
        if let Some((real, _)) = tables
            .clone()
            .find(|(t, r)| **r == TableRole::Real && f.allows_table(&t.schema, &t.table))
        {
            // DROP TABLE t, _t_old: no tool writes that; dm cannot run part of it.
            return Err(Error::OnlineDdl {
                table: real.to_string(),
                position: end.binlog.to_string(),
                statement: sql.to_string(),
                message: "a statement on both migrated tables and online schema change tables"
                    .into(),
            });
        }
        for (table, role) in tables.filter(|(_, r)| **r != TableRole::Real) {
            self.online_statement(ddl.kind, db, sql, table, role, st)
                .await?;
        }
        Ok(())
    }

    /// One shadow or trash table's statement (also for statements the parser does not know:
    /// `kind` is then CREATE or ALTER TABLE).
    pub(super) async fn online_statement(
        &mut self,
        kind: DdlKind,
        db: &str,
        sql: &str,
        table: &TableName,
        role: &TableRole,
        st: &SourceStatement,
    ) -> Result<()> {
        let end = &st.end;
        let at = end.binlog.to_string();
        let TableRole::Shadow(real) = role else {
            // Trash tables: the tools' originals and bookkeeping; nothing of them migrates.
            tracing::debug!(position = %at, statement = sql, "statement on an online schema change's trash table passed over");
            return Ok(());
        };
        if !self
            .inc
            .ctx
            .filter
            .allows_real_table(&table.schema, &table.table)
        {
            return Ok(());
        }
        let real = TableName::new(&table.schema, real);
        let k = key(table);
        match kind {
            DdlKind::CreateTable => {
                tracing::info!(position = %at, shadow = %table, table = %real, "online schema change started");
                self.cp.online_ddl.insert(k, new_record(table, &real, &at));
            }
            DdlKind::DropTable => {
                if let Some(r) = self.cp.online_ddl.remove(&k) {
                    tracing::info!(position = %at, shadow = %table, table = %r.real, dropped = r.statements.len(), "online schema change abandoned: its shadow table is dropped before the swap, the target's table stays as it was");
                }
            }
            DdlKind::TruncateTable => return Ok(()),
            _ => {
                let Some(stmt) = retarget(db, sql, &real) else {
                    return Err(Error::OnlineDdl {
                        table: real.to_string(),
                        position: at,
                        statement: sql.to_string(),
                        message: format!(
                            "dm cannot write this statement on the shadow table {table} for the real table"
                        ),
                    });
                };
                tracing::info!(position = %at, shadow = %table, statement = %stmt, "online schema change: statement recorded for the swap");
                let record = self
                    .cp
                    .online_ddl
                    .entry(k)
                    .or_insert_with(|| new_record(table, &real, &at));
                record.statements.push(RecordedDdl {
                    db: db.to_string(),
                    sql: stmt,
                    context: st.context.clone(),
                    position: at,
                });
            }
        }
        self.checkpoint_after_ddl(st).await
    }

    /// A RENAME with a shadow or trash table: the swap applies the shadow table's statements.
    async fn online_rename(
        &mut self,
        ddl: &Ddl,
        sql: &str,
        roles: &[TableRole],
        st: &SourceStatement,
    ) -> Result<()> {
        let end = &st.end;
        let refuse = |table: &TableName, message: &str| Error::OnlineDdl {
            table: table.to_string(),
            position: end.binlog.to_string(),
            statement: sql.to_string(),
            message: message.to_string(),
        };
        let mut swaps = Vec::new();
        for (pair, role) in ddl.tables.chunks(2).zip(roles.chunks(2)) {
            let (from, to) = (&pair[0], &pair[1]);
            if !self
                .inc
                .ctx
                .filter
                .allows_real_table(&from.schema, &from.table)
                && !self.inc.ctx.filter.allows_real_table(&to.schema, &to.table)
            {
                continue;
            }
            match (&role[0], &role[1]) {
                // The original out of the way, or back after a failed swap: the target's
                // table is the same table all along.
                (TableRole::Real, TableRole::Trash(_)) | (TableRole::Trash(_), TableRole::Real) => {
                }
                (TableRole::Trash(_), TableRole::Trash(_)) => {}
                (TableRole::Shadow(_), TableRole::Real) => swaps.push((from.clone(), to.clone())),
                (TableRole::Real, TableRole::Real) => {
                    return Err(refuse(from, "a RENAME of real tables together with an online schema change's tables"))
                }
                _ => {
                    return Err(refuse(from, "a RENAME no online schema change tool makes (a shadow table is renamed to anything but its real table, or a table to a shadow name)"))
                }
            }
        }
        for (shadow, real) in swaps {
            self.swap_in(&shadow, &real, sql, st).await?;
        }
        self.checkpoint_after_ddl(st).await
    }

    /// The shadow table replaces `real`: its recorded statements run on `real`.
    async fn swap_in(
        &mut self,
        shadow: &TableName,
        real: &TableName,
        sql: &str,
        st: &SourceStatement,
    ) -> Result<()> {
        let end = &st.end;
        let k = key(shadow);
        let Some(record) = self.cp.online_ddl.get(&k).cloned() else {
            return Err(Error::OnlineDdl {
                table: real.to_string(),
                position: end.binlog.to_string(),
                statement: sql.to_string(),
                message: format!("{shadow} replaces the table, but dm did not see what was run on it (the tool started before the task's position)"),
            });
        };
        // Everything before the swap is in the target first.
        self.checkpoint().await?;
        let mut statements = Vec::with_capacity(record.statements.len());
        for r in &record.statements {
            // Swapped in under another name than the one it was made for (a rare choice of
            // the tool's user): the statements follow.
            let stmt = match record.real == *real {
                true => Some(r.sql.clone()),
                false => retarget(&r.db, &r.sql, real),
            };
            let Some(stmt) = stmt else {
                return Err(Error::OnlineDdl {
                    table: real.to_string(),
                    position: end.binlog.to_string(),
                    statement: r.sql.clone(),
                    message: format!("{shadow} replaces another table than {}: dm cannot write its statement for it", record.real),
                });
            };
            statements.push((r.db.clone(), stmt, r.context.clone()));
        }
        let merged_shard =
            self.inc.shard.is_some() && self.inc.ctx.router.route(real).is_some_and(|r| r.merged);
        if merged_shard && statements.len() > 1 {
            // A shard's coordination takes one DDL per position: its changes as one ALTER.
            let parts: Vec<(&str, &str)> = statements
                .iter()
                .map(|(db, s, _)| (db.as_str(), s.as_str()))
                .collect();
            let Some(one) = combine_alters(&parts, real) else {
                return Err(Error::OnlineDdl {
                    table: real.to_string(),
                    position: end.binlog.to_string(),
                    statement: sql.to_string(),
                    message: "the shadow table's statements cannot be combined into the one ALTER TABLE a merged shard's coordination takes".into(),
                });
            };
            let (db, _, context) = statements.remove(0);
            statements = vec![(db, one, context)];
        }
        tracing::info!(position = %end.binlog, table = %real, shadow = %shadow, statements = statements.len(), "online schema change swapped in: applying its statements");
        // The statements are the swap's, at its position: the checkpoint stays before it
        // (with the record) until all of them ran; run again after a crash, those already
        // done are accepted as done.
        for (db, stmt, context) in statements {
            let recorded = SourceStatement::within(end, context);
            Box::pin(self.apply_query(&db, &stmt, &recorded)).await?;
        }
        self.cp.online_ddl.remove(&k);
        Ok(())
    }

    /// What query-status shows of the online schema changes in progress.
    pub(super) fn publish_online_ddl(&self) {
        let view = self
            .cp
            .online_ddl
            .values()
            .map(|r| OnlineDdlStatus {
                table: r.real.to_string(),
                shadow: r.shadow.to_string(),
                tool: r.tool.clone(),
                since: r.since.clone(),
                statements: r.statements.iter().map(|s| s.sql.clone()).collect(),
            })
            .collect();
        *self
            .inc
            .ctx
            .progress
            .online_ddl
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = view;
    }
}

fn new_record(shadow: &TableName, real: &TableName, at: &str) -> OnlineDdl {
    OnlineDdl {
        shadow: shadow.clone(),
        real: real.clone(),
        tool: tool_of(&shadow.table).to_string(),
        since: at.to_string(),
        statements: vec![],
    }
}
