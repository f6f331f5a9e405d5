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
const MAX_BODY: usize = 64 << 20;

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
        Err(e) => ApiError::from(Error::MetaUnavailable(format!(
            "cannot forward to the leader `{}` at {}: {e}",
            leader.name, leader.addr
        )))
        .into_response(),
    }
}

async fn forward(
    api: &crate::api_tls::ApiClient,
    req: Request,
    leader_addr: &str,
) -> Result<Response, String> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let body = to_bytes(body, MAX_BODY).await.map_err(|e| e.to_string())?;
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
    let resp = out.send().await.map_err(|e| e.to_string())?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
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
