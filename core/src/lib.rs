//! dm-core: the migration engine and the cluster roles. See docs/architecture.md.

pub mod config;
pub mod db;
pub mod error;
pub mod meta;
pub mod rules;
pub mod schema;

pub use error::{Error, Result};
