//! The master role: keeps sources and tasks in the metadata store, binds sources to workers
//! and serves the HTTP API that `dm ctl` uses (documented in docs/api.md).

mod api;

pub use api::router;

use crate::meta::MetaStore;
use std::sync::Arc;

#[derive(Clone)]
pub struct Master {
    pub store: Arc<dyn MetaStore>,
    /// The worker every source is bound to in standalone mode.
    pub worker: String,
}
