//! Online schema changes in progress (gh-ost, pt-online-schema-change): the statements run on
//! each shadow table, waiting for the RENAME that swaps the shadow table in. They are part of
//! the checkpoint, saved with the position they are valid at, so a restart or a failover in
//! the middle of a tool's run still applies them at its swap.

use crate::table::TableName;
use crate::upstream::StatementContext;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The online schema changes in progress, by shadow table (`schema.table`).
pub type OnlineDdls = BTreeMap<String, OnlineDdl>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineDdl {
    pub shadow: TableName,
    /// The table the shadow table replaces.
    pub real: TableName,
    pub tool: String,
    /// Where the shadow table was created (or first seen).
    pub since: String,
    /// Run on the shadow table, in order; each written for the real table.
    pub statements: Vec<RecordedDdl>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedDdl {
    /// The database the statement ran in.
    pub db: String,
    pub sql: String,
    /// The session the source ran it in: it is replayed in that session.
    pub context: StatementContext,
    pub position: String,
}

pub fn key(shadow: &TableName) -> String {
    format!("{}.{}", shadow.schema, shadow.table)
}
