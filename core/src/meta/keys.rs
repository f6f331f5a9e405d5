//! Every key of the metadata store: the one place its layout is written. Values are JSON
//! unless said otherwise. docs/architecture.md ("Roles and metadata") shows the same layout
//! for people; a test checks it names every prefix here.

/// Everything dm keeps is under here (the worker and the scheduler watch it).
pub const ROOT: &str = "/dm/";

/// `/dm/source/<source-id>`: a source's config (passwords encrypted).
pub const SOURCE: &str = "/dm/source/";
/// `/dm/bound/<source-id>`: the name of the worker that runs the source.
pub const BOUND: &str = "/dm/bound/";
/// `/dm/task/<task>`: a task's config.
pub const TASK: &str = "/dm/task/";
/// `/dm/stage/<task>`: the stage users asked for, its generation, binlog operators.
pub const STAGE: &str = "/dm/stage/";
/// `/dm/status/<task>/<source-id>`: a subtask's status, published by its worker (volatile).
pub const STATUS: &str = "/dm/status/";
/// `/dm/ping`: read to check that the store answers.
pub const PING: &str = "/dm/ping";

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

/// `/dm/plugin/<sha256>`: a plugin module (base64), content-addressed.
pub const PLUGIN: &str = "/dm/plugin/";

pub fn plugin(sha256: &str) -> String {
    format!("{PLUGIN}{sha256}")
}

/// Shard DDL coordination (see docs/architecture.md, "Shard DDL").
pub mod shard {
    use crate::hooks::ShardId;

    /// Everything of shard DDL coordination (the coordinator watches it).
    pub const PREFIX: &str = "/dm/shard/";

    /// `/dm/shard/member/<task>/<source>`: `{target: [shard table]}`, every shard of the
    /// source per merged target table.
    pub fn member_prefix(task: &str) -> String {
        format!("{PREFIX}member/{task}/")
    }
    pub fn member(task: &str, source: &str) -> String {
        format!("{}{source}", member_prefix(task))
    }
    /// `/dm/shard/ddl/<task>/<target>/<source>/<table>`: a shard's DDL waiting for a
    /// decision.
    pub fn ddl_prefix(task: &str) -> String {
        format!("{PREFIX}ddl/{task}/")
    }
    pub fn ddl(task: &str, target: &str, shard: &ShardId) -> String {
        format!(
            "{}{target}/{}/{}",
            ddl_prefix(task),
            shard.source,
            shard.table
        )
    }
    /// `/dm/shard/done/<task>/<target>/<source>/<table>`: the decision that released it.
    pub fn done_prefix(task: &str) -> String {
        format!("{PREFIX}done/{task}/")
    }
    pub fn done(task: &str, target: &str, shard: &ShardId) -> String {
        format!(
            "{}{target}/{}/{}",
            done_prefix(task),
            shard.source,
            shard.table
        )
    }
    /// `/dm/shard/lock/<task>/<target>`: a lock's executed and deferred DDLs, a conflict.
    pub fn lock_prefix(task: &str) -> String {
        format!("{PREFIX}lock/{task}/")
    }
    pub fn lock(task: &str, target: &str) -> String {
        format!("{}{target}", lock_prefix(task))
    }
}
