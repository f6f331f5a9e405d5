//! Handlers of `/api/v1/sources/...`: sources, their worker and their relay log.

use super::ApiResult;
use crate::api::types::*;
use crate::master::{members, relay as relay_ops, sources, Master};
use axum::extract::{Path, State};
use axum::Json;

pub async fn list(State(m): State<Master>) -> ApiResult<Vec<SourceView>> {
    Ok(Json(sources::list(&m).await?))
}

pub async fn create(State(m): State<Master>, Json(file): Json<FileBody>) -> ApiResult<SourceView> {
    Ok(Json(sources::create(&m, file).await?))
}

pub async fn update(
    State(m): State<Master>,
    Path(id): Path<String>,
    Json(file): Json<FileBody>,
) -> ApiResult<SourceView> {
    Ok(Json(sources::update(&m, &id, file).await?))
}

pub async fn stop(State(m): State<Master>, Path(id): Path<String>) -> ApiResult<Stopped> {
    Ok(Json(sources::stop(&m, &id).await?))
}

pub async fn transfer(
    State(m): State<Master>,
    Path(id): Path<String>,
    Json(body): Json<Transfer>,
) -> ApiResult<Transfer> {
    Ok(Json(members::transfer(&m, &id, &body.worker).await?))
}

pub async fn relay(
    State(m): State<Master>,
    Path((id, op)): Path<(String, String)>,
    body: Option<Json<RelayBody>>,
) -> ApiResult<RelayAnswer> {
    let filename = body.and_then(|Json(b)| b.filename);
    Ok(Json(relay_ops::operate(&m, &id, &op, filename).await?))
}
