//! The master's HTTP API as a contract: its routes, what each takes and answers, and the client
//! that calls them. The master's handlers (`master/http/`) serve it; `dm ctl` and the tests
//! use the client. docs/api.md and docs/openapi.yaml describe it.

pub mod client;
pub mod routes;
pub mod types;

pub use client::{Client, ClientError, Connect};
