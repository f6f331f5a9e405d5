//! Key names of the metadata store (layout in the module doc of `meta`).

pub const SOURCE: &str = "/dm/source/";
pub const BOUND: &str = "/dm/bound/";
pub const TASK: &str = "/dm/task/";
pub const STAGE: &str = "/dm/stage/";
pub const STATUS: &str = "/dm/status/";

pub fn source(id: &str) -> String {
    format!("{SOURCE}{id}")
}
pub fn bound(source_id: &str) -> String {
    format!("{BOUND}{source_id}")
}
pub fn task(name: &str) -> String {
    format!("{TASK}{name}")
}
pub fn stage(task: &str) -> String {
    format!("{STAGE}{task}")
}
pub fn status(task: &str, source_id: &str) -> String {
    format!("{STATUS}{task}/{source_id}")
}
pub fn status_prefix(task: &str) -> String {
    format!("{STATUS}{task}/")
}

// Cluster membership (see docs/architecture.md, "Cluster").
/// `{name, addr}` of the elected master, under the leader's lease.
pub const LEADER: &str = "/dm/leader";
/// Persistent registration of every master / worker that ever joined.
pub const MEMBER_MASTER: &str = "/dm/member/master/";
pub const MEMBER_WORKER: &str = "/dm/member/worker/";
/// Present while the member keeps its lease.
pub const ALIVE_MASTER: &str = "/dm/alive/master/";
pub const ALIVE_WORKER: &str = "/dm/alive/worker/";
/// The worker a source was bound to last: binding prefers it (sticky).
pub const LAST_BOUND: &str = "/dm/last-bound/";
/// A source being moved by `transfer-source` (under a short lease): not bound meanwhile.
pub const MOVING: &str = "/dm/moving/";
/// A master asked to step down and not stand for election (`operate-leader evict`).
pub const EVICT: &str = "/dm/evict/";

pub fn member_master(name: &str) -> String {
    format!("{MEMBER_MASTER}{name}")
}
pub fn member_worker(name: &str) -> String {
    format!("{MEMBER_WORKER}{name}")
}
pub fn alive_master(name: &str) -> String {
    format!("{ALIVE_MASTER}{name}")
}
pub fn alive_worker(name: &str) -> String {
    format!("{ALIVE_WORKER}{name}")
}
pub fn last_bound(source_id: &str) -> String {
    format!("{LAST_BOUND}{source_id}")
}
pub fn moving(source_id: &str) -> String {
    format!("{MOVING}{source_id}")
}
pub fn evict(master: &str) -> String {
    format!("{EVICT}{master}")
}

// Relay logs (see docs/architecture.md, "Relay log").
/// `paused` or `running`, set by `pause-relay` / `resume-relay`.
pub const RELAY_STAGE: &str = "/dm/relay-stage/";
/// The last `purge-relay` request of a source.
pub const RELAY_PURGE: &str = "/dm/relay-purge/";
/// What the worker running the relay reports.
pub const RELAY_STATUS: &str = "/dm/relay-status/";

pub fn relay_stage(source_id: &str) -> String {
    format!("{RELAY_STAGE}{source_id}")
}
pub fn relay_purge(source_id: &str) -> String {
    format!("{RELAY_PURGE}{source_id}")
}
pub fn relay_status(source_id: &str) -> String {
    format!("{RELAY_STATUS}{source_id}")
}

/// Continuous validation of a task (`validation start`): its interval.
pub const VALIDATION: &str = "/dm/validation/";
/// The last validation run of a task.
pub const VALIDATION_STATUS: &str = "/dm/validation-status/";

pub fn validation(task: &str) -> String {
    format!("{VALIDATION}{task}")
}
pub fn validation_status(task: &str) -> String {
    format!("{VALIDATION_STATUS}{task}")
}
