//! Rules of a task. The block-allow list decides which schemas and tables a task migrates, for
//! DML and DDL alike, in both phases; binlog event filters drop (or refuse) kinds of events and
//! statements; expression filters drop rows by a condition on their values.

mod block_allow;
mod event_filter;
mod expression_filter;
pub mod online_ddl;
mod router;
mod row_rules;
mod task;

pub use block_allow::TableFilter;
pub use event_filter::{EventFilter, EventKind, Verdict};
pub use expression_filter::ExpressionFilters;
pub use online_ddl::{OnlineDdlRules, TableRole};
pub use router::{Routed, Router, SchemaRoute};
pub use row_rules::{RowOrigin, RowRules};
pub use task::TaskRules;
