//! `binlog replace` and `binlog inject`: statements a user gave for one source transaction.
//! DDL runs as the source's own would (filters, routes, tracked schema; "already done"
//! errors accepted, so a restart may run it again). DML runs on the target as written, in
//! one target transaction together with the dispatcher's record of how many of the
//! statements are done (its row in the high-water table, `DISPATCHER`), so a restart
//! neither loses nor repeats it.

use super::ddl::SourceStatement;
use super::Dispatcher;
use crate::error::{DbRole, Error, Result};
use crate::position::{BinlogPos, Position};
use crate::schema::{classify_statement, StatementClass};
use crate::session_lock::DISPATCHER;
use crate::upstream::StatementContext;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

/// What a user decided for one source transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum BinlogAction {
    /// Leave it out (`binlog skip`).
    Skip,
    /// Run these statements instead of it (`binlog replace`).
    Replace { sql: Vec<String> },
    /// Run these statements before it, then it as usual (`binlog inject`).
    Inject { sql: Vec<String> },
}

impl BinlogAction {
    /// `skip`, `replace` or `inject`: the command that recorded it.
    pub fn name(&self) -> &'static str {
        match self {
            BinlogAction::Skip => "skip",
            BinlogAction::Replace { .. } => "replace",
            BinlogAction::Inject { .. } => "inject",
        }
    }

    /// The statements it runs (none for a skip).
    pub fn statements(&self) -> &[String] {
        match self {
            BinlogAction::Skip => &[],
            BinlogAction::Replace { sql } | BinlogAction::Inject { sql } => sql,
        }
    }
}

/// A binlog operator: what to do with the source transaction ending at `at`. One per
/// transaction: a later decision for the same transaction takes the earlier one's place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinlogOperator {
    pub at: BinlogPos,
    #[serde(flatten)]
    pub action: BinlogAction,
}

/// Records `action` for the transaction ending at `at`, in place of any earlier one.
pub fn record_operator(ops: &mut Vec<BinlogOperator>, at: BinlogPos, action: BinlogAction) {
    ops.retain(|o| o.at != at);
    ops.push(BinlogOperator { at, action });
}

impl Dispatcher<'_> {
    /// Runs `stmts` instead of the transaction ending at `end`, then checkpoints past it.
    pub(super) async fn replace_txn(&mut self, stmts: &[String], end: &Position) -> Result<()> {
        tracing::warn!(position = %end.binlog, statements = stmts.len(), "transaction replaced (binlog replace)");
        self.run_operator(stmts, end).await?;
        self.cp.position = end.clone();
        self.dirty = true;
        self.checkpoint().await
    }

    /// Runs `stmts` before the transaction ending at `end`; the checkpoint stays before the
    /// transaction until it is applied.
    pub(super) async fn inject_before(&mut self, stmts: &[String], end: &Position) -> Result<()> {
        tracing::warn!(position = %end.binlog, statements = stmts.len(), "statements injected before the transaction (binlog inject)");
        self.run_operator(stmts, end).await
    }

    async fn run_operator(&mut self, stmts: &[String], end: &Position) -> Result<()> {
        // Everything before is applied first.
        self.checkpoint().await?;
        let done = self.operator_done(end).await?;
        let mut dml: Vec<&str> = Vec::new();
        for (i, sql) in stmts.iter().enumerate() {
            if matches!(classify_statement("", sql), StatementClass::Dml { .. }) {
                if i >= done {
                    dml.push(sql);
                }
                continue;
            }
            self.run_operator_dml(&dml, i, end).await?;
            dml.clear();
            // Not the end of the transaction: the caller checkpoints.
            let st = SourceStatement::within(end, StatementContext::default());
            self.apply_query("", sql, &st).await?;
        }
        self.run_operator_dml(&dml, stmts.len(), end).await
    }

    /// How many statements of the operator at `end` a run before this one completed.
    async fn operator_done(&mut self, end: &Position) -> Result<usize> {
        let te = self.tgt_err();
        let row: Option<(u64, String, u64)> = self
            .conn
            .exec_first(
                format!(
                    "SELECT seq, binlog_name, binlog_pos FROM {} WHERE source_id = ? AND worker = ?",
                    self.inc.ctx.meta.high_water
                ),
                (&self.inc.ctx.source.source_id, DISPATCHER),
            )
            .await
            .map_err(te)?;
        Ok(match row {
            Some((seq, name, pos)) if name == end.binlog.name && pos == end.binlog.pos => {
                seq as usize
            }
            _ => 0,
        })
    }

    /// Runs DML statements in one target transaction that also records `done_after`
    /// statements of the operator at `end` as done.
    async fn run_operator_dml(
        &mut self,
        dml: &[&str],
        done_after: usize,
        end: &Position,
    ) -> Result<()> {
        if dml.is_empty() {
            return Ok(());
        }
        let mut text = String::from("START TRANSACTION;\n");
        for s in dml {
            text.push_str(s);
            text.push_str(";\n");
        }
        text.push_str(&self.inc.ctx.meta.high_water_sql(
            &self.inc.ctx.source.source_id,
            DISPATCHER,
            done_after as u64,
            &end.binlog,
            0,
        ));
        text.push_str(";\nCOMMIT");
        self.inc.ctx.fence.check()?;
        if let Err(e) = self.conn.query_drop(text.as_str()).await {
            let _ = self.conn.query_drop("ROLLBACK").await;
            let at = end.binlog.to_string();
            return Err(
                Error::db(DbRole::Target, &self.inc.ctx.target.addr(), e).during(
                    format_args!(
                        "while running the statements given for the transaction ending at {at}"
                    ),
                    &at,
                ),
            );
        }
        tracing::info!(position = %end.binlog, statements = dml.len(), "operator DML applied");
        Ok(())
    }
}
