//! dm-core: the migration engine and the cluster roles. See docs/architecture.md.

pub mod checkpoint;
pub mod config;
pub mod db;
pub mod error;
pub mod meta;
pub mod rules;
pub mod schema;
pub mod snapshot;
pub mod status;
pub mod upstream;

pub use error::{Error, Result};
