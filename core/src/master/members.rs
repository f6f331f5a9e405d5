//! Cluster membership API: where etcd is, who is a member, moving a source, leader eviction.

use super::election::MemberInfo;
use super::Master;
use crate::api::types::{LeaderAnswer, MasterView, Members, Offline, Transfer, WorkerView};
use crate::error::Error;
use crate::meta::{self, keys};
use crate::status::SubtaskStatus;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// etcd client URLs, for workers that know only the masters.
pub fn etcd_endpoints(m: &Master) -> super::etcd_access::EtcdDiscovery {
    m.cluster
        .as_ref()
        .map(|c| c.etcd.clone())
        .unwrap_or_default()
}

/// Source -> worker.
async fn bindings(m: &Master) -> Result<BTreeMap<String, String>, Error> {
    Ok(m.store
        .list(keys::BOUND)
        .await?
        .into_iter()
        .map(|(k, v)| {
            (
                k[keys::BOUND.len()..].to_string(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect())
}

pub async fn list(m: &Master) -> Result<Members, Error> {
    let bound = bindings(m).await?;
    let sources_of = |w: &str| -> Vec<String> {
        bound
            .iter()
            .filter(|(_, b)| *b == w)
            .map(|(s, _)| s.clone())
            .collect()
    };
    if m.cluster.is_none() {
        // Standalone: one master, one worker, in this process.
        let worker = m.standalone_worker.clone().unwrap_or_default();
        let sources = sources_of(&worker);
        return Ok(Members {
            leader: Some("standalone".into()),
            masters: vec![MasterView {
                name: "standalone".into(),
                addr: String::new(),
                alive: true,
                leader: true,
                insecure: m.insecure,
            }],
            workers: vec![WorkerView {
                stage: "bound".into(),
                source: sources.first().cloned(),
                sources,
                name: worker,
            }],
        });
    }
    let leader = meta::get_json::<MemberInfo>(m.store.as_ref(), keys::LEADER)
        .await?
        .map(|l| l.name);
    let alive_masters = meta::list_names(m.store.as_ref(), keys::ALIVE_MASTER).await?;
    let masters = meta::list_json::<MemberInfo>(m.store.as_ref(), keys::MEMBER_MASTER)
        .await?
        .into_iter()
        .map(|(_, i)| MasterView {
            alive: alive_masters.contains(&i.name),
            leader: leader.as_deref() == Some(i.name.as_str()),
            name: i.name,
            addr: i.addr,
            insecure: i.insecure,
        })
        .collect();
    let alive_workers = meta::list_names(m.store.as_ref(), keys::ALIVE_WORKER).await?;
    let workers = meta::list_names(m.store.as_ref(), keys::MEMBER_WORKER)
        .await?
        .into_iter()
        .map(|name| {
            let sources = sources_of(&name);
            let stage = match (alive_workers.contains(&name), sources.is_empty()) {
                (false, _) => "offline",
                (true, false) => "bound",
                (true, true) => "free",
            };
            WorkerView {
                stage: stage.into(),
                source: sources.first().cloned(),
                sources,
                name,
            }
        })
        .collect();
    Ok(Members {
        leader,
        masters,
        workers,
    })
}

/// `offline-member`: forgets a master or worker that is not running.
pub async fn offline(m: &Master, kind: &str, name: &str) -> Result<Offline, Error> {
    let (member, alive) = match kind {
        "master" => (keys::member_master(name), keys::alive_master(name)),
        "worker" => (keys::member_worker(name), keys::alive_worker(name)),
        _ => {
            return Err(Error::Invalid(format!(
                "unknown member kind `{kind}`: use master or worker"
            )))
        }
    };
    if m.store.get(&member).await?.is_none() {
        return Err(Error::NotFound(format!("{kind} `{name}` is not a member")));
    }
    if m.store.get(&alive).await?.is_some() {
        return Err(Error::Invalid(format!(
            "{kind} `{name}` is running; stop it first, then take it offline"
        )));
    }
    m.store.delete(&member).await?;
    m.store.delete(&keys::evict(name)).await?;
    Ok(Offline {
        offline: name.to_string(),
    })
}

/// `transfer-source`: moves a source to a live worker (which may run other sources too, as
/// the scheduler binds them when workers are fewer than sources). The old worker stops its
/// subtasks first (its status keys go away), then the new one starts them.
pub async fn transfer(m: &Master, source: &str, worker: &str) -> Result<Transfer, Error> {
    let moved = || Transfer {
        source: source.to_string(),
        worker: worker.to_string(),
    };
    if m.cluster.is_none() {
        return Err(Error::Invalid("transfer-source needs a cluster".into()));
    }
    if m.store.get(&keys::source(source)).await?.is_none() {
        return Err(Error::NotFound(format!("source `{source}` does not exist")));
    }
    if m.store.get(&keys::alive_worker(worker)).await?.is_none() {
        return Err(Error::Invalid(format!(
            "worker `{}` is not running",
            worker
        )));
    }
    let bound = bindings(m).await?;
    if bound.get(source).map(String::as_str) == Some(worker) {
        return Ok(moved());
    }
    // The scheduler leaves a moving source alone; the hold ends by itself (lease) should
    // this master die half-way.
    let hold = m.store.grant_lease(60).await?;
    m.store
        .put_leased(&keys::moving(source), worker.as_bytes().to_vec(), hold)
        .await?;
    m.store
        .put(&keys::last_bound(source), worker.as_bytes().to_vec())
        .await?;
    if let Some(old) = bound.get(source) {
        m.store
            .compare_and_delete(&keys::bound(source), old.as_bytes())
            .await?;
        if let Err(e) = wait_stopped(m, source, old).await {
            m.store.revoke_lease(hold).await?;
            return Err(e);
        }
    }
    m.store
        .compare_and_put(&keys::bound(source), None, worker.as_bytes().to_vec())
        .await?;
    m.store.revoke_lease(hold).await?;
    Ok(moved())
}

/// Waits until `worker` no longer reports running subtasks of `source`.
async fn wait_stopped(m: &Master, source: &str, worker: &str) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let still = meta::list_json::<SubtaskStatus>(m.store.as_ref(), keys::STATUS)
            .await?
            .into_iter()
            .any(|(_, s)| s.source_id == source && s.worker == worker);
        if !still {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Invalid(format!(
                "worker `{worker}` did not stop source `{source}` within 30 s; it stays unbound and the scheduler binds it again"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `operate-leader evict|cancel-evict`.
pub async fn operate_leader(m: &Master, op: &str) -> Result<LeaderAnswer, Error> {
    let Some(cluster) = m.cluster.as_ref() else {
        return Err(Error::Invalid("operate-leader needs a cluster".into()));
    };
    match op {
        // Answered by the leader (requests are forwarded to it): evicts itself.
        "evict" => {
            m.store
                .put(&keys::evict(&cluster.me.name), b"1".to_vec())
                .await?;
            Ok(LeaderAnswer {
                evicted: Some(cluster.me.name.clone()),
                cancelled: None,
            })
        }
        "cancel-evict" => {
            let evicted = meta::list_names(m.store.as_ref(), keys::EVICT).await?;
            for name in &evicted {
                m.store.delete(&keys::evict(name)).await?;
            }
            Ok(LeaderAnswer {
                evicted: None,
                cancelled: Some(evicted),
            })
        }
        _ => Err(Error::Invalid(format!(
            "unknown operation `{op}`: use evict or cancel-evict"
        ))),
    }
}
