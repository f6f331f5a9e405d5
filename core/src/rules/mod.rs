//! Table selection rules of a task. The block-allow list decides which schemas and tables a
//! task migrates, for DML and DDL alike, in both phases.

mod block_allow;
mod pattern;

pub use block_allow::TableFilter;
pub use pattern::Pattern;
