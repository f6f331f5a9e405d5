//! A master's membership: it registers under a lease, stands for election, and while it leads
//! runs the scheduler. Election is a key created under the candidate's lease (`/dm/leader`):
//! whoever creates it leads until its lease runs out or it resigns; the others try again as
//! soon as the key is gone. The leader steps down by itself as soon as its own conservative
//! idea of the lease says the lease may be gone, before etcd lets another master in.

use super::scheduler;
use crate::abort_on_drop::AbortOnDrop;
use crate::fence::BootInstant;
pub use crate::meta::MemberInfo;
use crate::meta::{self, keys, MetaStore};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Membership {
    pub me: MemberInfo,
    /// What workers are told about reaching etcd (`/api/v1/cluster/etcd`).
    pub etcd: super::etcd_access::EtcdDiscovery,
    pub store: Arc<dyn MetaStore>,
    pub ttl: i64,
    leader: AtomicBool,
    /// Runs shard DDL policy plugins while this master leads.
    plugin_host: crate::hooks::Host,
}

/// How often a follower looks whether the leader key is free.
const POLL: Duration = Duration::from_millis(200);

impl Membership {
    pub fn new(
        me: MemberInfo,
        etcd: super::etcd_access::EtcdDiscovery,
        store: Arc<dyn MetaStore>,
        ttl: i64,
        plugin_host: crate::hooks::Host,
    ) -> Arc<Self> {
        Arc::new(Membership {
            me,
            etcd,
            store,
            ttl,
            leader: AtomicBool::new(false),
            plugin_host,
        })
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    fn me_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.me).unwrap_or_default()
    }

    /// Creates `/dm/alive/master/<name>` under a new lease; `None` while a live lease holds
    /// it (another master of this name, or this one's previous lease not yet run out).
    async fn try_register(&self) -> crate::Result<Option<(i64, BootInstant)>> {
        let store = self.store.as_ref();
        let granted_at = BootInstant::now();
        let lease = store.grant_lease(self.ttl).await?;
        let key = keys::alive_master(&self.me.name);
        if store.create_leased(&key, self.me_json(), lease).await? {
            return Ok(Some((lease, granted_at)));
        }
        let _ = store.revoke_lease(lease).await;
        Ok(None)
    }

    /// Registers this master as it starts: waits up to twice the TTL for a lease of an
    /// earlier run of it to run out, and refuses a name another live master holds. Two
    /// masters of one name would campaign with the same identity: either could resign the
    /// other's leadership (`compare_and_delete` of the leader key by value), and workers
    /// and followers would reach whichever registered last.
    pub async fn register(&self) -> crate::Result<(i64, BootInstant)> {
        let deadline = std::time::Instant::now() + Duration::from_secs(2 * self.ttl as u64 + 1);
        loop {
            match self.try_register().await {
                Ok(Some(lease)) => return Ok(lease),
                Ok(None) if std::time::Instant::now() >= deadline => {
                    return Err(crate::Error::Invalid(format!(
                        "a master named `{}` is already running (it keeps its lease alive): give this master another `name`",
                        self.me.name
                    )))
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot register with etcd yet"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Renews and campaigns forever, first with `first` (from `register`).
    pub async fn run(self: Arc<Self>, mut first: Option<(i64, BootInstant)>) {
        let store = self.store.as_ref();
        if let Err(e) = meta::put_json(store, &keys::member_master(&self.me.name), &self.me).await {
            tracing::warn!(error = %e, "cannot register this master");
        }
        loop {
            let (lease, granted_at) = match first.take() {
                Some(l) => l,
                None => match self.try_register().await {
                    Ok(Some(l)) => l,
                    Ok(None) => {
                        // The old lease's key is there until etcd lets the lease go.
                        tokio::time::sleep(POLL).await;
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot get a lease from etcd");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                },
            };
            let valid_until = granted_at + Duration::from_secs(self.ttl as u64);
            self.hold(lease, valid_until).await;
            if self.leader.swap(false, Ordering::SeqCst) {
                tracing::warn!(master = %self.me.name, "lease lost: no longer the leader");
            }
        }
    }

    /// Renews `lease` and campaigns with it until it may have run out.
    async fn hold(&self, lease: i64, mut valid_until: BootInstant) {
        let store = self.store.as_ref();
        let renew_every = Duration::from_millis((self.ttl as u64 * 1000) / 3);
        let mut renewed = BootInstant::now();
        // The leader's work: binding sources, coordinating shard DDLs.
        let mut _scheduler: Option<[AbortOnDrop<()>; 3]> = None;
        loop {
            tokio::time::sleep(POLL).await;
            if renewed.elapsed() >= renew_every {
                let sent = BootInstant::now();
                // As long as the lease allows: etcd answers once it has a leader again.
                let wait = valid_until.saturating_duration_since(sent + POLL);
                match store.keep_alive(lease, wait).await {
                    Ok(ttl) if ttl > 0 => {
                        valid_until = sent + Duration::from_secs(ttl as u64);
                        renewed = sent;
                        if self.is_leader() && _scheduler.is_none() {
                            tracing::info!(master = %self.me.name, "lease confirmed again: leading");
                            _scheduler = Some(self.leader_work());
                        }
                    }
                    Ok(_) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "lease renewal failed");
                        // A leader that cannot confirm its lease may be cut off from a
                        // majority that elects another: it stops binding and coordinating
                        // (shard DDL runs on targets) until a renewal gets through.
                        if _scheduler.take().is_some() {
                            tracing::warn!(master = %self.me.name, "lease not confirmed: leader's work paused");
                        }
                    }
                }
            }
            // Step down a little before the lease may end, so two leaders never overlap.
            if BootInstant::now() + POLL >= valid_until {
                return;
            }
            let evicted = matches!(store.get(&keys::evict(&self.me.name)).await, Ok(Some(_)));
            if self.is_leader() {
                if evicted {
                    tracing::warn!(master = %self.me.name, "evicted: stepping down");
                    _scheduler = None;
                    self.leader.store(false, Ordering::SeqCst);
                    let _ = store
                        .compare_and_delete(keys::LEADER, &self.me_json())
                        .await;
                }
                continue;
            }
            if evicted {
                continue;
            }
            let won = match store
                .create_leased(keys::LEADER, self.me_json(), lease)
                .await
            {
                Ok(true) => true,
                // A retried create may have succeeded the first time.
                Ok(false) => store.get(keys::LEADER).await.ok().flatten() == Some(self.me_json()),
                Err(_) => false,
            };
            if won {
                tracing::info!(master = %self.me.name, "elected leader");
                self.leader.store(true, Ordering::SeqCst);
                _scheduler = Some(self.leader_work());
            }
        }
        // Dropping `scheduler` stops it.
    }

    /// The leader's own work: binding, shard DDL, validation; stopped when dropped.
    fn leader_work(&self) -> [AbortOnDrop<()>; 3] {
        [
            AbortOnDrop(tokio::spawn(scheduler::run(self.store.clone()))),
            AbortOnDrop(tokio::spawn(crate::shard::coordinator::run(
                self.store.clone(),
                self.plugin_host.clone(),
            ))),
            AbortOnDrop(tokio::spawn(super::validation::run(self.store.clone()))),
        ]
    }
}
