//! The master's HTTP API: the router built from the route list of `crate::api::routes`, and
//! thin handlers per resource over the master's logic. Every error answers with
//! `{code, message, hint}` and a 4xx/5xx status.

mod binlog;
mod cluster;
mod sources;
mod tasks;

use super::{forward, Master};
use crate::api::routes::{self, Route, Verb};
use crate::error::Error;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};

/// An engine error as the API answers it.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Config { .. } | Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::Db { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::MetaUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(self.0.report())).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// axum's own refusals (a body that is not the JSON the route takes, one over the limit, a
/// path or method the API does not have) are plain text: they get the API's error shape,
/// `{code, message, hint}`, with their status and text.
async fn json_errors(res: Response) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (_, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let what = if text.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {text}")
    };
    let err = match status {
        StatusCode::NOT_FOUND => Error::NotFound(format!("{what} (no such API path)")),
        StatusCode::METHOD_NOT_ALLOWED => {
            Error::Invalid(format!("{what} (docs/api.md lists each path's methods)"))
        }
        _ => Error::Invalid(what),
    };
    (status, Json(err.report())).into_response()
}

/// The largest request body the API reads: task files with their plugin modules (each at
/// most 1 MiB, base64) fit; nothing bigger is read into memory.
pub(super) const API_BODY_LIMIT: usize = 8 * 1024 * 1024;

fn filter(verb: Verb) -> MethodFilter {
    match verb {
        Verb::Get => MethodFilter::GET,
        Verb::Post => MethodFilter::POST,
        Verb::Delete => MethodFilter::DELETE,
    }
}

/// `ROUTE => handler, ...`: each route of `crate::api::routes` with the handler serving it.
macro_rules! endpoints {
    ($($route:ident => $handler:path),* $(,)?) => {
        vec![$((routes::$route, on(filter(routes::$route.verb), $handler))),*]
    };
}

/// Every route the master serves, with its handler.
fn endpoints() -> Vec<(Route, MethodRouter<Master>)> {
    endpoints! {
        LIST_SOURCES => sources::list,
        CREATE_SOURCE => sources::create,
        STOP_SOURCE => sources::stop,
        UPDATE_SOURCE => sources::update,
        TRANSFER_SOURCE => sources::transfer,
        OPERATE_RELAY => sources::relay,
        LIST_TASKS => tasks::list,
        START_TASK => tasks::start,
        CHECK_TASK => tasks::check,
        GET_TASK => tasks::get,
        STOP_TASK => tasks::stop,
        PAUSE_TASK => tasks::pause,
        RESUME_TASK => tasks::resume,
        UPDATE_TASK => tasks::update,
        VERIFY_TASK => tasks::verify,
        VALIDATION_STATUS => tasks::validation_status,
        VALIDATION_START => tasks::validation_start,
        VALIDATION_STOP => tasks::validation_stop,
        BINLOG_SKIP => binlog::skip,
        BINLOG_REPLACE => binlog::replace,
        BINLOG_INJECT => binlog::inject,
        BINLOG_REVERT => binlog::revert,
        THROTTLE_TASK => tasks::throttle,
        RESYNC_TASK => tasks::resync,
        BINLOG_LIST => binlog::list,
        BINLOG_SCHEMA_LIST => binlog::schema_list,
        BINLOG_SCHEMA_CHANGE => binlog::schema_change,
        SHARD_LOCKS => cluster::shard_locks,
        SHARD_UNLOCK => cluster::shard_unlock,
        MEMBERS => cluster::members,
        OFFLINE_MEMBER => cluster::offline_member,
        OPERATE_LEADER => cluster::operate_leader,
        EXPORT_CONFIG => cluster::export_config,
        GET_CONFIG => cluster::get_config,
        ETCD_ENDPOINTS => cluster::etcd_endpoints,
        METRICS => cluster::metrics,
        TASK_HISTORY => tasks::history,
    }
}

/// The routes the router serves (what docs/openapi.yaml is tested against).
pub fn served_routes() -> Vec<Route> {
    endpoints().into_iter().map(|(r, _)| r).collect()
}

/// The API, behind `guard` (Host, content type, tokens: `api_auth`); a follower forwards to
/// the leader (`forward`).
pub fn router(master: Master, guard: crate::api_auth::ApiGuard) -> Router {
    // Samples for the console while the process runs (only the leader keeps them).
    tokio::spawn(crate::master::console::history::sample(master.clone()));
    let mut router = crate::master::console::routes();
    for (route, handler) in endpoints() {
        // Several methods on one path merge into one method router.
        router = router.route(route.path, handler);
    }
    router
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::extract::DefaultBodyLimit::max(API_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            master.clone(),
            forward::to_leader,
        ))
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(guard),
            crate::api_auth::guard,
        ))
        .with_state(master)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_router_serves_every_route_of_the_contract_once() {
        let served = served_routes();
        let set: BTreeSet<Route> = served.iter().copied().collect();
        assert_eq!(set.len(), served.len(), "a route is served twice");
        assert_eq!(set, routes::ALL.iter().copied().collect::<BTreeSet<_>>());
    }
}
