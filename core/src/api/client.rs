//! The client of the master's API: one method per route with typed requests and answers,
//! trying the masters of a cluster in turn. `dm ctl` (and its `--watch`) and the tests use it.

use super::routes::{self, percent_encode, Route, Verb};
use super::types::*;
use crate::api_tls::ApiClient;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// Why a call did not get an answer it could read.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No master answered.
    #[error("cannot reach any master ({tried})\n  hint: {hint}")]
    Unreachable { tried: String, hint: &'static str },
    /// The master refused the request with one of dm's errors.
    #[error("[{}] {}{}", .report.code, .report.message, hint_line(&.report.hint))]
    Refused { status: u16, report: ErrorReport },
    /// An answer that is not dm's (a proxy's page, an older master).
    #[error("the master answered {status}: {body}")]
    Unexpected { status: u16, body: String },
    /// The client could not be set up (a TLS file, a token).
    #[error("{0}")]
    Setup(String),
}

fn hint_line(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("\n  hint: {hint}")
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// How to reach the masters.
#[derive(Debug, Default, Clone)]
pub struct Connect<'a> {
    /// PEM of the CA of the masters' API certificates: talk HTTPS.
    pub tls_ca: Option<&'a Path>,
    /// PEM client certificate and key, for masters that require one.
    pub identity: Option<(&'a Path, &'a Path)>,
    /// Bearer token, for masters with `auth.tokens`.
    pub token: Option<&'a str>,
    /// The longest a call may take (`verify` of a large task takes long).
    pub timeout: Option<Duration>,
}

pub struct Client {
    /// One master per entry; the first that answers is used.
    bases: Vec<String>,
    http: reqwest::Client,
    /// HTTPS without a client certificate: a master that asks for one ends the connection.
    without_certificate: bool,
}

impl Client {
    /// A client of the masters at `addrs` (comma-separated `host:port` or URLs).
    pub fn new(addrs: &str, how: &Connect<'_>) -> Result<Client> {
        let api = ApiClient::new(
            how.tls_ca,
            how.timeout.unwrap_or(Duration::from_secs(60)),
            how.token,
            how.identity,
        )
        .map_err(|e| ClientError::Setup(e.to_string()))?;
        let bases = addrs
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| api.base(a))
            .collect();
        Ok(Client {
            bases,
            http: api.http,
            without_certificate: how.tls_ca.is_some() && how.identity.is_none(),
        })
    }

    /// Calls `route` with `args` for its path parameters, `query` appended as it is, and
    /// `body` as JSON (every change carries one: the API refuses others, see api_auth).
    async fn send(
        &self,
        route: Route,
        args: &[&str],
        query: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, String)> {
        let path = format!("{}{query}", route.path_with(args));
        let method = match route.verb {
            Verb::Get => reqwest::Method::GET,
            Verb::Post => reqwest::Method::POST,
            Verb::Delete => reqwest::Method::DELETE,
        };
        let body = match (body, route.verb) {
            (Some(b), _) => Some(b),
            (None, Verb::Get) => None,
            (None, _) => Some(serde_json::json!({})),
        };
        let mut failures = vec![];
        for base in &self.bases {
            let mut req = self.http.request(method.clone(), format!("{base}{path}"));
            if let Some(b) = &body {
                req = req.json(b);
            }
            match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.map_err(|e| ClientError::Unexpected {
                        status,
                        body: format!("(unreadable: {})", error_chain(&e)),
                    })?;
                    return Ok((status, text));
                }
                Err(e) => failures.push(format!("{base}: {}", error_chain(&e))),
            }
        }
        let tried = failures.join("; ");
        // With TLS 1.3 the master checks the client's certificate after the handshake: its
        // refusal reaches the client as an alert or, as often, as a closed connection.
        let closed = tried.contains("connection was not ready")
            || tried.contains("connection closed")
            || tried.contains("Connection reset");
        let hint = if tried.contains("CertificateRequired") || (self.without_certificate && closed)
        {
            "the master asks for a client certificate (tls.cert-allowed-cn): pass --tls-cert and --tls-key (DM_TLS_CERT, DM_TLS_KEY)"
        } else {
            "start one with `dm standalone -c dm.yaml` or `dm master -c master.yaml`, or pass --master-addr; a master with `tls` needs https and --tls-ca <ca.pem>"
        };
        Err(ClientError::Unreachable { tried, hint })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        route: Route,
        args: &[&str],
        query: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T> {
        let body = body
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let (status, text) = self.send(route, args, query, body).await?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|e| ClientError::Unexpected {
                status,
                body: format!("{e}: {text}"),
            });
        }
        match serde_json::from_str::<ErrorReport>(&text) {
            Ok(report) => Err(ClientError::Refused { status, report }),
            Err(_) => Err(ClientError::Unexpected { status, body: text }),
        }
    }

    pub async fn list_sources(&self) -> Result<Vec<SourceView>> {
        self.call(routes::LIST_SOURCES, &[], "", NO_BODY).await
    }

    pub async fn create_source(&self, file: &FileBody) -> Result<SourceView> {
        self.call(routes::CREATE_SOURCE, &[], "", Some(file)).await
    }

    pub async fn update_source(&self, id: &str, file: &FileBody) -> Result<SourceView> {
        self.call(routes::UPDATE_SOURCE, &[id], "", Some(file))
            .await
    }

    pub async fn stop_source(&self, id: &str) -> Result<Stopped> {
        self.call(routes::STOP_SOURCE, &[id], "", NO_BODY).await
    }

    pub async fn transfer_source(&self, id: &str, worker: &str) -> Result<Transfer> {
        let body = Transfer {
            source: id.to_string(),
            worker: worker.to_string(),
        };
        self.call(routes::TRANSFER_SOURCE, &[id], "", Some(&body))
            .await
    }

    /// `op`: start, stop, pause, resume, purge (with `filename`).
    pub async fn operate_relay(&self, id: &str, op: &str, body: &RelayBody) -> Result<RelayAnswer> {
        self.call(routes::OPERATE_RELAY, &[id, op], "", Some(body))
            .await
    }

    pub async fn list_tasks(&self) -> Result<Vec<TaskView>> {
        self.call(routes::LIST_TASKS, &[], "", NO_BODY).await
    }

    pub async fn get_task(&self, name: &str) -> Result<TaskView> {
        self.call(routes::GET_TASK, &[name], "", NO_BODY).await
    }

    pub async fn start_task(&self, file: &FileBody) -> Result<TaskView> {
        self.call(routes::START_TASK, &[], "", Some(file)).await
    }

    pub async fn check_task(&self, file: &FileBody) -> Result<Vec<Finding>> {
        self.call(routes::CHECK_TASK, &[], "", Some(file)).await
    }

    pub async fn update_task(&self, name: &str, file: &FileBody) -> Result<TaskView> {
        self.call(routes::UPDATE_TASK, &[name], "", Some(file))
            .await
    }

    /// The whole task, or with `sources` those sources' subtasks alone.
    pub async fn stop_task(&self, name: &str, sources: &[String]) -> Result<Stopped> {
        let query = query("sources", Some(&sources.join(",")));
        self.call(routes::STOP_TASK, &[name], &query, NO_BODY).await
    }

    pub async fn pause_task(&self, name: &str, sources: &[String]) -> Result<TaskView> {
        let body = StageBody {
            sources: sources.to_vec(),
        };
        self.call(routes::PAUSE_TASK, &[name], "", Some(&body))
            .await
    }

    pub async fn resume_task(&self, name: &str, sources: &[String]) -> Result<TaskView> {
        let body = StageBody {
            sources: sources.to_vec(),
        };
        self.call(routes::RESUME_TASK, &[name], "", Some(&body))
            .await
    }

    pub async fn verify(&self, name: &str, fix: bool) -> Result<Vec<TableReport>> {
        let body = VerifyBody { fix };
        self.call(routes::VERIFY_TASK, &[name], "", Some(&body))
            .await
    }

    pub async fn binlog_skip(&self, name: &str, at: &BinlogAt) -> Result<TaskView> {
        self.call(routes::BINLOG_SKIP, &[name], "", Some(at)).await
    }

    pub async fn binlog_replace(&self, name: &str, body: &BinlogStatements) -> Result<TaskView> {
        self.call(routes::BINLOG_REPLACE, &[name], "", Some(body))
            .await
    }

    pub async fn binlog_inject(&self, name: &str, body: &BinlogStatements) -> Result<TaskView> {
        self.call(routes::BINLOG_INJECT, &[name], "", Some(body))
            .await
    }

    pub async fn throttle_task(&self, name: &str, body: &ThrottleRequest) -> Result<TaskView> {
        self.call(routes::THROTTLE_TASK, &[name], "", Some(body))
            .await
    }

    pub async fn resync_task(&self, name: &str, body: &ResyncBody) -> Result<TaskView> {
        self.call(routes::RESYNC_TASK, &[name], "", Some(body))
            .await
    }

    pub async fn binlog_revert(&self, name: &str, at: &BinlogAt) -> Result<TaskView> {
        self.call(routes::BINLOG_REVERT, &[name], "", Some(at))
            .await
    }

    pub async fn binlog_list(&self, name: &str) -> Result<Vec<BinlogOperator>> {
        self.call(routes::BINLOG_LIST, &[name], "", NO_BODY).await
    }

    pub async fn schema_list(&self, name: &str, source: Option<&str>) -> Result<Vec<TrackedTable>> {
        let query = query("source", source);
        self.call(routes::BINLOG_SCHEMA_LIST, &[name], &query, NO_BODY)
            .await
    }

    pub async fn schema_change(
        &self,
        name: &str,
        change: &SchemaChange,
    ) -> Result<Vec<TrackedTable>> {
        self.call(routes::BINLOG_SCHEMA_CHANGE, &[name], "", Some(change))
            .await
    }

    pub async fn validation_status(&self, name: &str) -> Result<ValidationStatus> {
        self.call(routes::VALIDATION_STATUS, &[name], "", NO_BODY)
            .await
    }

    pub async fn validation_start(
        &self,
        name: &str,
        interval_secs: u64,
    ) -> Result<ValidationStatus> {
        let body = ValidationStart {
            interval_secs: Some(interval_secs),
        };
        self.call(routes::VALIDATION_START, &[name], "", Some(&body))
            .await
    }

    pub async fn validation_stop(&self, name: &str) -> Result<ValidationStatus> {
        self.call(routes::VALIDATION_STOP, &[name], "", NO_BODY)
            .await
    }

    pub async fn shard_locks(&self, task: Option<&str>) -> Result<Vec<LockReport>> {
        let query = query("task", task);
        self.call(routes::SHARD_LOCKS, &[], &query, NO_BODY).await
    }

    pub async fn shard_unlock(&self, body: &UnlockBody) -> Result<Unlocked> {
        self.call(routes::SHARD_UNLOCK, &[], "", Some(body)).await
    }

    pub async fn members(&self) -> Result<Members> {
        self.call(routes::MEMBERS, &[], "", NO_BODY).await
    }

    /// `kind`: master or worker.
    pub async fn offline_member(&self, kind: &str, name: &str) -> Result<Offline> {
        self.call(routes::OFFLINE_MEMBER, &[kind, name], "", NO_BODY)
            .await
    }

    /// `op`: evict or cancel-evict.
    pub async fn operate_leader(&self, op: &str) -> Result<LeaderAnswer> {
        self.call(routes::OPERATE_LEADER, &[op], "", NO_BODY).await
    }

    pub async fn export_config(&self) -> Result<Vec<ConfigFile>> {
        self.call(routes::EXPORT_CONFIG, &[], "", NO_BODY).await
    }

    /// `kind`: task or source.
    pub async fn get_config(&self, kind: &str, name: &str) -> Result<ConfigFile> {
        self.call(routes::GET_CONFIG, &[kind, name], "", NO_BODY)
            .await
    }

    pub async fn etcd_endpoints(&self) -> Result<EtcdDiscovery> {
        self.call(routes::ETCD_ENDPOINTS, &[], "", NO_BODY).await
    }

    /// `/metrics`, Prometheus' text format.
    pub async fn metrics(&self) -> Result<String> {
        let (status, text) = self.send(routes::METRICS, &[], "", None).await?;
        if (200..300).contains(&status) {
            Ok(text)
        } else {
            Err(ClientError::Unexpected { status, body: text })
        }
    }
}

const NO_BODY: Option<&()> = None;

/// `?key=value` (encoded), or nothing when there is no value.
fn query(key: &str, value: Option<&str>) -> String {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => format!("?{key}={}", percent_encode(v)),
        None => String::new(),
    }
}

/// reqwest's message hides the cause (refused, certificate, ...): the whole chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}
