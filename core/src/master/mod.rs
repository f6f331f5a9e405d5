//! The master role: keeps sources and tasks in the metadata store, binds sources to workers
//! and serves the HTTP API that `dm ctl` uses (documented in docs/api.md). In a cluster the
//! masters elect a leader; only the leader schedules, the others forward API calls to it.

mod binlog_ops;
mod binlog_schema;
pub mod cluster;
mod config_api;
pub mod console;
mod election;
pub mod etcd_access;
mod etcd_member;
mod forward;
mod http;
mod members;
mod prometheus;
mod relay;
mod resync;
mod scheduler;
mod shard_locks;
mod sources;
mod start_time;
mod task_files;
mod tasks;
mod throttle;
pub mod validation;

pub use election::{MemberInfo, Membership};
pub use http::{router, served_routes};

use crate::meta::MetaStore;
use std::sync::Arc;

#[derive(Clone)]
pub struct Master {
    pub store: Arc<dyn MetaStore>,
    /// Standalone: the one worker every source is bound to when it is created.
    pub standalone_worker: Option<String>,
    /// Cluster: this master's membership (election state).
    pub cluster: Option<Arc<Membership>>,
    /// Task files this master watches for edits.
    pub task_files: Arc<task_files::TaskFiles>,
    /// Client for other masters' APIs (forwarding to the leader).
    pub api: crate::api_tls::ApiClient,
    /// This master serves its API beyond loopback without TLS and authentication.
    pub insecure: bool,
    /// The last hour of the tasks' lag and throughput, for the console (`console::history`).
    pub history: Arc<console::history::History>,
}
