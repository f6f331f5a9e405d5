//! The metadata store of a cluster: etcd, through `etcd-client`.
//!
//! etcd-client's balanced channel keeps sending to a member that died, so the store holds one
//! client per endpoint and moves to the next endpoint after a failure. Every request is
//! retried for a few seconds; a store that still does not answer is reported as unavailable
//! (no quorum), which the API turns into a clear message. Watches run on a client without a request timeout
//! (a timeout would cut the stream) and are reopened when their member dies.

use super::{MetaStore, WatchEvent};
use crate::error::{Error, Result};
use async_trait::async_trait;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions,
    Identity, PutOptions, TlsOptions, Txn, TxnOp, WatchOptions,
};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long one request may take before it is sent again.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// A lease renewal is tried again soon rather than waited for long: leases are short.
/// Bounds of how long a lease renewal waits for etcd to answer.
const KEEPALIVE_MIN_WAIT: Duration = Duration::from_millis(300);
const KEEPALIVE_MAX_WAIT: Duration = Duration::from_secs(10);
/// A renewal without an answer tries every endpoint again this often.
const KEEPALIVE_RETRY: Duration = Duration::from_millis(150);
/// How long a request is retried before the store counts as unavailable.
const RETRY_FOR: Duration = Duration::from_secs(5);

/// How to reach etcd besides its URLs: TLS (https endpoints) and an etcd user.
#[derive(Clone, Default, PartialEq)]
pub struct EtcdAccess {
    /// PEM of the CA that signed the members' certificates.
    pub ca_pem: Option<String>,
    /// PEM certificate and key this process presents (members that require client
    /// certificates).
    pub identity: Option<(String, String)>,
    /// etcd user and password (an etcd with authentication enabled).
    pub user: Option<(String, String)>,
}

impl EtcdAccess {
    /// Refuses endpoints whose scheme does not match: https needs a CA, TLS needs https.
    fn check(&self, endpoints: &[String]) -> Result<()> {
        for e in endpoints {
            let https = e.starts_with("https://");
            if https && self.ca_pem.is_none() {
                return Err(Error::Invalid(format!(
                    "etcd at {e} serves TLS: give the CA of its certificate (etcd.tls.ca, or the master's tls.ca for embedded members; a worker's master-tls-ca)"
                )));
            }
            if !https && self.ca_pem.is_some() {
                return Err(Error::Invalid(format!(
                    "etcd at {e} is plain http while TLS is configured for etcd: use https:// URLs"
                )));
            }
        }
        Ok(())
    }

    fn options(&self, base: ConnectOptions) -> ConnectOptions {
        let mut opts = base;
        if let Some(ca) = &self.ca_pem {
            let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(ca));
            if let Some((cert, key)) = &self.identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            opts = opts.with_tls(tls);
        }
        if let Some((user, password)) = &self.user {
            opts = opts.with_user(user, password).with_auto_token_refresh(true);
        }
        opts
    }
}

pub struct EtcdStore {
    endpoints: Vec<String>,
    access: EtcdAccess,
    /// One per endpoint, with a request timeout.
    clients: Vec<Client>,
    /// One per endpoint, without request timeout: for watch streams.
    stream_clients: Vec<Client>,
    /// The endpoint in use; moves on after a failure.
    current: Arc<AtomicUsize>,
}

impl EtcdStore {
    /// Connects to `endpoints` (`http://host:port`), waiting up to `wait` for one to answer.
    pub async fn connect(
        endpoints: &[String],
        access: &EtcdAccess,
        wait: Duration,
    ) -> Result<Self> {
        access.check(endpoints)?;
        let deadline = Instant::now() + wait;
        loop {
            match Self::try_connect(endpoints, access).await {
                Ok(store) => return Ok(store),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }

    async fn try_connect(endpoints: &[String], access: &EtcdAccess) -> Result<Self> {
        let unavailable = |e: etcd_client::Error| {
            Error::MetaUnavailable(format!("etcd at {}: {e}", endpoints.join(",")))
        };
        let opts = access.options(
            ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(2))
                .with_timeout(REQUEST_TIMEOUT)
                .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2)),
        );
        let mut clients = vec![];
        let mut stream_clients = vec![];
        for e in endpoints {
            clients.push(
                Client::connect([e], Some(opts.clone()))
                    .await
                    .map_err(unavailable)?,
            );
            stream_clients.push(
                Client::connect(
                    [e],
                    Some(access.options(
                        ConnectOptions::new().with_connect_timeout(Duration::from_secs(2)),
                    )),
                )
                .await
                .map_err(unavailable)?,
            );
        }
        let store = EtcdStore {
            endpoints: endpoints.to_vec(),
            access: access.clone(),
            clients,
            stream_clients,
            current: Arc::default(),
        };
        // Connecting is lazy: make sure somebody answers.
        store.get(super::keys::PING).await?;
        Ok(store)
    }

    /// When the member at `own_url` (an embedded member) is etcd's leader, hands etcd's
    /// leadership to another member. Used by the leading master: a crash of its process then
    /// costs one election (dm's), not two (etcd's, whose leader change also extends every
    /// lease by an election timeout, then dm's).
    pub async fn hand_off_etcd_leadership(&self, own_url: &str) -> Result<bool> {
        let Some(i) = self.endpoints.iter().position(|e| e == own_url) else {
            return Ok(false);
        };
        let mut c = self.clients[i].clone();
        let err = |e: etcd_client::Error| Error::Meta(format!("etcd leadership hand-off: {e}"));
        let status = c.status().await.map_err(err)?;
        let me = status.header().map(|h| h.member_id()).unwrap_or(0);
        if status.leader() != me {
            return Ok(false);
        }
        let members = c.member_list().await.map_err(err)?;
        // Only to a member that answers (the list keeps dead members too) and whose log is
        // caught up: etcd takes no writes while a transfer waits for its transferee, and a
        // member that lags (one that just restarted) may lose the leadership right away.
        let mut best: Option<(u64, u64)> = None;
        for other in members.members().iter().filter(|m| m.id() != me) {
            let Some(index) = raft_index(other.client_urls(), &self.access).await else {
                continue;
            };
            if index + CATCH_UP_SLACK >= status.raft_index() && best.is_none_or(|(_, i)| index > i)
            {
                best = Some((other.id(), index));
            }
        }
        let Some((to, _)) = best else {
            return Ok(false);
        };
        c.move_leader(to).await.map_err(err)?;
        Ok(true)
    }

    /// Client URLs of every member of the etcd cluster, then the configured endpoints.
    pub async fn member_urls(&self) -> Vec<String> {
        let mut out = vec![];
        if let Ok(resp) = self
            .retry("member list", |mut c| async move { c.member_list().await })
            .await
        {
            for m in resp.members() {
                out.extend(m.client_urls().iter().cloned());
            }
        }
        for e in &self.endpoints {
            if !out.contains(e) {
                out.push(e.clone());
            }
        }
        out
    }

    fn client(&self) -> (usize, Client) {
        let i = self.current.load(Ordering::Relaxed) % self.clients.len();
        (i, self.clients[i].clone())
    }

    /// After a failure on endpoint `i`: the next request goes to the next endpoint.
    fn failed(&self, i: usize) {
        let _ = self.current.compare_exchange(
            i,
            (i + 1) % self.clients.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Runs a compare-and-swap transaction; whether its condition held.
    async fn txn(&self, txn: Txn) -> Result<bool> {
        let resp = self
            .retry("txn", |mut c| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await?;
        Ok(resp.succeeded())
    }

    /// Runs `op` until it succeeds or `RETRY_FOR` has passed.
    async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let start = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let (i, client) = self.client();
            match op(client).await {
                Ok(v) => return Ok(v),
                Err(e) if start.elapsed() >= RETRY_FOR => {
                    return Err(Error::MetaUnavailable(format!(
                        "{what} at etcd {}: {e}",
                        self.endpoints.join(",")
                    )))
                }
                Err(e) => {
                    self.failed(i);
                    tracing::debug!(error = %e, "etcd {what} failed; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }
}

/// How far (raft log entries) a member may be behind the leader and still be handed the
/// leadership.
const CATCH_UP_SLACK: u64 = 100;

/// The raft index of the etcd member at one of `urls`, if it answers a status request within
/// 500 ms.
async fn raft_index(urls: &[String], access: &EtcdAccess) -> Option<u64> {
    let opts = access.options(
        ConnectOptions::new()
            .with_connect_timeout(Duration::from_millis(500))
            .with_timeout(Duration::from_millis(500)),
    );
    let mut c = Client::connect(urls, Some(opts)).await.ok()?;
    c.status().await.ok().map(|s| s.raft_index())
}

#[async_trait]
impl MetaStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let resp = self
            .retry("get", |mut c| async move { c.get(key, None).await })
            .await?;
        Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.retry("put", |mut c| {
            let v = value.clone();
            async move { c.put(key, v, None).await }
        })
        .await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.retry("delete", |mut c| async move { c.delete(key, None).await })
            .await?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let resp = self
            .retry("list", |mut c| async move {
                c.get(prefix, Some(GetOptions::new().with_prefix())).await
            })
            .await?;
        Ok(resp
            .kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    kv.value().to_vec(),
                )
            })
            .collect())
    }

    async fn compare_and_put(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Vec<u8>,
    ) -> Result<bool> {
        let cmp = match expected {
            None => Compare::create_revision(key, CompareOp::Equal, 0),
            Some(v) => Compare::value(key, CompareOp::Equal, v),
        };
        self.txn(
            Txn::new()
                .when([cmp])
                .and_then([TxnOp::put(key, value, None)]),
        )
        .await
    }

    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool> {
        self.txn(
            Txn::new()
                .when([Compare::value(key, CompareOp::Equal, expected)])
                .and_then([TxnOp::delete(key, None::<DeleteOptions>)]),
        )
        .await
    }

    async fn watch(&self, prefix: &str) -> Result<mpsc::Receiver<WatchEvent>> {
        let (tx, rx) = mpsc::channel(1024);
        let clients = self.stream_clients.clone();
        let mut i = self.current.load(Ordering::Relaxed);
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            // Reopened after each failure, on the next endpoint; the watchers re-read the
            // store on their own timer, so what happens between two streams is not lost.
            while !tx.is_closed() {
                i = (i + 1) % clients.len();
                let mut c = clients[i].clone();
                let mut stream = match c
                    .watch(prefix.as_str(), Some(WatchOptions::new().with_prefix()))
                    .await
                {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, "etcd watch failed; reopening");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                loop {
                    let resp = tokio::select! {
                        r = stream.message() => r,
                        _ = tx.closed() => return,
                    };
                    let Ok(Some(resp)) = resp else { break };
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let event = WatchEvent {
                            key: String::from_utf8_lossy(kv.key()).into_owned(),
                            value: (ev.event_type() == EventType::Put).then(|| kv.value().to_vec()),
                        };
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Ok(rx)
    }

    async fn grant_lease(&self, ttl: i64) -> Result<i64> {
        let resp = self
            .retry("lease grant", |mut c| async move {
                c.lease_grant(ttl, None).await
            })
            .await?;
        Ok(resp.id())
    }

    async fn keep_alive(&self, lease: i64, wait: Duration) -> Result<i64> {
        // On every endpoint at once, again every `KEEPALIVE_RETRY` while none answered
        // (earlier tries keep running), the first answer wins: neither a member that just
        // died nor one whose forwarding to a dead leader hangs holds the renewal up, and a
        // renewal gets through as soon as etcd has a leader again. One short-lived stream per
        // try: a stream dies with its member and never recovers. Stream clients have no
        // request timeout: `wait` (as long as the caller's lease allows) bounds it all.
        let wait = wait.clamp(KEEPALIVE_MIN_WAIT, KEEPALIVE_MAX_WAIT);
        let deadline = tokio::time::Instant::now() + wait;
        let attempt = |mut c: Client| async move {
            let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            Ok::<_, etcd_client::Error>(stream.message().await?.map(|r| r.ttl()).unwrap_or(0))
        };
        let mut tries = futures_util::stream::FuturesUnordered::new();
        let mut last = Error::MetaUnavailable("lease keepalive timed out".into());
        let mut next_round = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_round {
                for c in &self.stream_clients {
                    tries.push(attempt(c.clone()));
                }
                next_round += KEEPALIVE_RETRY;
            }
            let until = next_round.min(deadline);
            tokio::select! {
                Some(r) = futures_util::StreamExt::next(&mut tries) => match r {
                    Ok(ttl) => return Ok(ttl),
                    Err(e) => last = Error::MetaUnavailable(format!("lease keepalive: {e}")),
                },
                _ = tokio::time::sleep_until(until) => {
                    if until >= deadline {
                        return Err(last);
                    }
                }
            }
        }
    }

    async fn revoke_lease(&self, lease: i64) -> Result<()> {
        // Once: a lease that is gone already needs no revoking.
        let (_, mut c) = self.client();
        let _ = c.lease_revoke(lease).await;
        Ok(())
    }

    async fn put_leased(&self, key: &str, value: Vec<u8>, lease: i64) -> Result<()> {
        self.retry("put", |mut c| {
            let v = value.clone();
            async move {
                c.put(key, v, Some(PutOptions::new().with_lease(lease)))
                    .await
            }
        })
        .await?;
        Ok(())
    }

    async fn create_leased(&self, key: &str, value: Vec<u8>, lease: i64) -> Result<bool> {
        self.txn(
            Txn::new()
                .when([Compare::create_revision(key, CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key,
                    value,
                    Some(PutOptions::new().with_lease(lease)),
                )]),
        )
        .await
    }
}
