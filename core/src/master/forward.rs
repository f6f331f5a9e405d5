//! A follower master answers API calls by forwarding them to the leader, so `dm ctl` can talk
//! to any master. `/api/v1/cluster/*` (what a worker asks before it can reach etcd) and
//! `/metrics` are answered locally.

use super::election::MemberInfo;
use super::http::ApiError;
use super::Master;
use crate::error::Error;
use crate::meta::{self, keys};
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Set on forwarded requests: a master never forwards a request twice.
const FORWARDED: &str = "x-dm-forwarded";
/// The leader's answer is read into memory up to this (a config export of many tasks fits).
const MAX_ANSWER: usize = 64 << 20;

pub async fn to_leader(State(m): State<Master>, req: Request, next: Next) -> Response {
    let Some(cluster) = m.cluster.as_ref() else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if !path.starts_with("/api/v1/") || path.starts_with("/api/v1/cluster/") || cluster.is_leader()
    {
        return next.run(req).await;
    }
    let leader = match meta::get_json::<MemberInfo>(m.store.as_ref(), keys::LEADER).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return ApiError::from(Error::MetaUnavailable(
                "no master is the leader right now (an election is under way, or too few masters run); try again in a few seconds".into(),
            ))
            .into_response()
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    if leader.name == cluster.me.name {
        return next.run(req).await;
    }
    if req.headers().contains_key(FORWARDED) {
        return ApiError::from(Error::MetaUnavailable(format!(
            "the leader changed while the request was forwarded (now `{}`); try again",
            leader.name
        )))
        .into_response();
    }
    match forward(&m.api, req, &leader.addr).await {
        Ok(r) => r,
        Err(Forward::TooBig) => ApiError::from(Error::Invalid(format!(
            "the request body is over {} MiB",
            super::http::API_BODY_LIMIT >> 20
        )))
        .into_response(),
        Err(Forward::Failed(e)) => ApiError::from(Error::MetaUnavailable(format!(
            "cannot forward to the leader `{}` at {}: {e}",
            leader.name, leader.addr
        )))
        .into_response(),
    }
}

/// Why a request was not forwarded.
enum Forward {
    /// Its body is over the API's limit (the leader would refuse it too): read no further.
    TooBig,
    Failed(String),
}

impl From<reqwest::Error> for Forward {
    fn from(e: reqwest::Error) -> Self {
        Forward::Failed(e.to_string())
    }
}

async fn forward(
    api: &crate::api_tls::ApiClient,
    req: Request,
    leader_addr: &str,
) -> Result<Response, Forward> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let body = to_bytes(body, super::http::API_BODY_LIMIT)
        .await
        .map_err(|_| Forward::TooBig)?;
    let mut out = api
        .http
        .request(
            parts.method.clone(),
            format!("{}{path}", api.base(leader_addr)),
        )
        .header(FORWARDED, "1")
        .body(body);
    for name in [header::CONTENT_TYPE, header::AUTHORIZATION] {
        if let Some(v) = parts.headers.get(&name) {
            out = out.header(name, v);
        }
    }
    let mut resp = out.send().await?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if bytes.len() + chunk.len() > MAX_ANSWER {
            return Err(Forward::Failed(format!(
                "the leader's answer is over {} MiB",
                MAX_ANSWER >> 20
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    if let Some(ct) = content_type {
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_bytes(ct.as_bytes())
                .unwrap_or(HeaderValue::from_static("text/plain")),
        );
    }
    Ok(r)
}
