//! dm-core: the migration engine and the cluster roles. See docs/architecture.md.

mod abort_on_drop;
pub mod api;
pub mod api_auth;
mod api_tls;
mod budget;
mod check;
pub mod checkpoint;
pub mod config;
mod context;
pub mod datum;
mod db;
mod dump;
pub mod durable;
pub mod error;
mod expr;
mod failpoint;
mod fence;
pub mod hooks;
mod load;
pub mod master;
pub mod meta;
mod metrics;
mod position;
pub mod rules;
mod schema;
pub mod secret;
mod shard;
mod snapshot;
pub mod standalone;
pub mod status;
pub mod sync;
pub mod table;
pub mod upstream;
mod verify;
pub mod worker;

pub use error::{Error, Result};
