//! User locks a subtask's writing sessions hold on the target while they run (apply workers,
//! the dispatcher, the DDL session, full-phase copiers): a restarted or moved subtask ends the
//! sessions of an earlier run before it reads where they got, and a session that lost its lock
//! never writes again (docs/architecture.md, "Two workers never write for one source").

use crate::checkpoint::MetaTables;
use crate::error::{DbRole, Error, Result};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// The worker number of the dispatcher's own session: its lock, and its row in the
/// high-water table (statements of `binlog replace/inject` done).
pub const DISPATCHER: usize = 1_000_000;
/// The worker number of the session DDL runs in (set to each statement's source session).
pub const DDL_SESSION: usize = 1_000_001;
/// The worker number of the apply worker of tables linked by foreign keys (`sync/linked.rs`).
pub const LINKED_WORKER: usize = 1_000_002;

/// Name of the user lock an apply worker (or the dispatcher) holds on the target while it
/// runs: a restarted task waits until the old worker's session is gone before it reads the
/// high waters. The hash is fixed (SHA-256), so every build and worker agrees on the name.
pub fn lock_name(task_meta: &MetaTables, source_id: &str, worker: usize) -> String {
    let hex = stable_hash(&[task_meta.high_water.as_bytes(), source_id.as_bytes()]);
    format!("dm-apply-{hex}-{worker}")
}

/// 16 hex digits of the SHA-256 of `parts` joined by NULs: the same in every build,
/// unlike std's `DefaultHasher`, whose algorithm may change between Rust releases. Lock names
/// built from it agree between workers built apart (a rolling upgrade).
pub fn stable_hash(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update([0u8]);
        }
        h.update(p);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A user lock of a subtask's writing session, with the table where its holder's connection
/// id is recorded. MySQL and MariaDB tell the holder (`IS_USED_LOCK`); TiDB answers 1 for a
/// lock another session holds ("cannot return the holder's id"), so there the recorded id
/// is the one ended. Killing connection 1 could end some other client's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLock {
    pub name: String,
    /// `<meta>.<task>_sessions`, quoted.
    holders: String,
}

impl SessionLock {
    /// The lock of session `worker` of `source_id` in the task of `task_meta`.
    pub fn of(task_meta: &MetaTables, source_id: &str, worker: usize) -> Self {
        SessionLock {
            name: lock_name(task_meta, source_id, worker),
            holders: task_meta.sessions.clone(),
        }
    }

    /// Records `conn` as the holder (it just took the lock).
    async fn record(&self, conn: &mut Conn, addr: &str) -> Result<()> {
        conn.exec_drop(
            format!(
                "REPLACE INTO {} (lock_name, connection_id) VALUES (?, CONNECTION_ID())",
                self.holders
            ),
            (&self.name,),
        )
        .await
        .map_err(|e| Error::db(DbRole::Target, addr, e))
    }
}

/// Whether the server is TiDB (whose `IS_USED_LOCK` does not name the holder).
async fn is_tidb(conn: &mut Conn, addr: &str) -> Result<bool> {
    let v: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| Error::db(DbRole::Target, addr, e))?;
    Ok(v.is_some_and(|v| v.contains("TiDB")))
}

/// Ends connection `id`, which held a lock of an earlier run.
async fn end_session(conn: &mut Conn, lock: &str, id: u64) {
    tracing::warn!(
        lock,
        session = id,
        "a session of an earlier run holds the lock: ending it"
    );
    // It may be gone already.
    let _ = conn.query_drop(format!("KILL CONNECTION {id}")).await;
}

/// Takes `lock` on `conn`. A session of an earlier run that still holds it (a run stopped
/// mid-commit, or a frozen worker whose sources moved here) is killed: its open transaction
/// commits or rolls back whole, together with its high water, and it can never commit
/// again, since a reconnecting session must take the lock first.
pub async fn take_lock(conn: &mut Conn, addr: &str, lock: &SessionLock) -> Result<()> {
    let te = |e| Error::db(DbRole::Target, addr, e);
    let name = &lock.name;
    let got: Option<Option<i64>> = conn
        .exec_first("SELECT GET_LOCK(?, 0)", (name,))
        .await
        .map_err(te)?;
    if got.flatten() == Some(1) {
        return lock.record(conn, addr).await;
    }
    end_holders(conn, addr, std::slice::from_ref(lock)).await?;
    let got: Option<Option<i64>> = conn
        .exec_first("SELECT GET_LOCK(?, 30)", (name,))
        .await
        .map_err(te)?;
    if got.flatten() == Some(1) {
        lock.record(conn, addr).await
    } else {
        Err(Error::Db {
            role: DbRole::Target,
            addr: addr.to_string(),
            message: format!("an earlier apply session still holds the lock `{name}`"),
            errno: None,
            retryable: true,
            position: None,
        })
    }
}

/// Takes a session's lock again on a new connection, waiting only briefly: whoever holds it
/// now took the source over, and this run must not write any more.
pub async fn reclaim_lock(conn: &mut Conn, addr: &str, lock: &SessionLock) -> Result<()> {
    let got: Option<Option<i64>> = conn
        .exec_first("SELECT GET_LOCK(?, 5)", (&lock.name,))
        .await
        .map_err(|e| Error::db(DbRole::Target, addr, e))?;
    if got.flatten() == Some(1) {
        lock.record(conn, addr).await
    } else {
        Err(Error::LeaseLost(format!(
            "another run of this subtask holds the lock `{}`; this one stops",
            lock.name
        )))
    }
}

/// Ends every session that holds one of `locks` (sessions of an earlier owner of the
/// source), without taking the locks.
pub async fn end_holders(conn: &mut Conn, addr: &str, locks: &[SessionLock]) -> Result<()> {
    let Some(first) = locks.first() else {
        return Ok(());
    };
    let sql = format!(
        "SELECT {}",
        locks
            .iter()
            .map(|l| format!("IS_USED_LOCK({})", crate::db::quote_str(&l.name)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let row: Option<mysql_async::Row> = conn
        .query_first(sql)
        .await
        .map_err(|e| Error::db(DbRole::Target, addr, e))?;
    let used: Vec<Option<u64>> = row
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| mysql_async::from_value_opt::<u64>(v).ok())
                .collect()
        })
        .unwrap_or_default();
    if !used.iter().any(Option::is_some) {
        return Ok(());
    }
    let tidb = is_tidb(conn, addr).await?;
    let recorded: std::collections::BTreeMap<String, u64> = if tidb {
        conn.query(format!(
            "SELECT lock_name, connection_id FROM {}",
            first.holders
        ))
        .await
        .map_err(|e| Error::db(DbRole::Target, addr, e))?
        .into_iter()
        .collect()
    } else {
        Default::default()
    };
    for (lock, reported) in locks.iter().zip(used) {
        let holder = match reported {
            None => None,
            Some(id) if !tidb => Some(id),
            Some(_) => recorded.get(&lock.name).copied(),
        };
        if let Some(id) = holder {
            end_session(conn, &lock.name, id).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are part of the protocol between runs of dm (a new version takes over the
    /// sessions of an old one): they must never change.
    #[test]
    fn lock_names_are_fixed() {
        let meta = MetaTables::new("dm_meta", "t");
        assert_eq!(lock_name(&meta, "s1", 3), "dm-apply-8f3e811e7c3ffa43-3");
        assert_eq!(stable_hash(&[b"db", b"tbl"]), "2b098ebde68963de");
    }
}
