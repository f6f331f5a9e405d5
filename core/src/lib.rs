//! dm-core: the migration engine and the cluster roles. See docs/architecture.md.

pub mod abort_on_drop;
pub mod api;
pub mod api_auth;
pub mod api_tls;
pub mod budget;
pub mod check;
pub mod checkpoint;
pub mod config;
pub mod context;
pub mod datum;
pub mod db;
pub mod dump;
pub mod durable;
pub mod error;
pub mod expr;
pub mod failpoint;
pub mod fence;
pub mod hooks;
pub mod load;
pub mod master;
pub mod meta;
pub mod metrics;
pub mod position;
pub mod rules;
pub mod schema;
pub mod secret;
pub mod shard;
pub mod snapshot;
pub mod standalone;
pub mod status;
pub mod sync;
pub mod table;
pub mod upstream;
pub mod verify;
pub mod worker;

pub use error::{Error, Result};
