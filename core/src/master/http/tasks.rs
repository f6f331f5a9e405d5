//! Handlers of `/api/v1/tasks/...`: tasks, their stage, verify and continuous validation.

use super::ApiResult;
use crate::api::types::*;
use crate::master::{resync, tasks, throttle, validation, Master};
use crate::status::Stage;
use axum::extract::{Path, Query, State};
use axum::Json;

pub async fn list(State(m): State<Master>) -> ApiResult<Vec<TaskView>> {
    Ok(Json(tasks::list(&m).await?))
}

pub async fn history(
    State(m): State<Master>,
) -> ApiResult<std::collections::BTreeMap<String, Vec<HistorySample>>> {
    Ok(Json(m.history.snapshot()))
}

pub async fn get(State(m): State<Master>, Path(name): Path<String>) -> ApiResult<TaskView> {
    Ok(Json(tasks::get(&m, &name).await?))
}

pub async fn start(State(m): State<Master>, Json(file): Json<FileBody>) -> ApiResult<TaskView> {
    Ok(Json(tasks::start(&m, file).await?))
}

pub async fn check(State(m): State<Master>, Json(file): Json<FileBody>) -> ApiResult<Vec<Finding>> {
    Ok(Json(tasks::check(&m, file).await?))
}

pub async fn update(
    State(m): State<Master>,
    Path(name): Path<String>,
    Json(file): Json<FileBody>,
) -> ApiResult<TaskView> {
    Ok(Json(tasks::update(&m, &name, file).await?))
}

pub async fn stop(
    State(m): State<Master>,
    Path(name): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult<Stopped> {
    let sources = q
        .sources
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    Ok(Json(tasks::stop(&m, &name, sources).await?))
}

pub async fn throttle(
    State(m): State<Master>,
    Path(name): Path<String>,
    Json(body): Json<ThrottleRequest>,
) -> ApiResult<TaskView> {
    Ok(Json(throttle::set(&m, &name, &body).await?))
}

pub async fn resync(
    State(m): State<Master>,
    Path(name): Path<String>,
    Json(body): Json<ResyncBody>,
) -> ApiResult<TaskView> {
    Ok(Json(resync::resync(&m, &name, &body).await?))
}

pub async fn pause(
    m: State<Master>,
    name: Path<String>,
    body: Option<Json<StageBody>>,
) -> ApiResult<TaskView> {
    set_stage(m, name, body, Stage::Paused).await
}

pub async fn resume(
    m: State<Master>,
    name: Path<String>,
    body: Option<Json<StageBody>>,
) -> ApiResult<TaskView> {
    set_stage(m, name, body, Stage::Running).await
}

/// The whole task, or with `sources` in the body those sources' subtasks.
async fn set_stage(
    State(m): State<Master>,
    Path(name): Path<String>,
    body: Option<Json<StageBody>>,
    stage: Stage,
) -> ApiResult<TaskView> {
    let sources = body.map(|Json(b)| b.sources).unwrap_or_default();
    Ok(Json(tasks::set_stage(&m, &name, stage, &sources).await?))
}

pub async fn verify(
    State(m): State<Master>,
    Path(name): Path<String>,
    Json(body): Json<VerifyBody>,
) -> ApiResult<Vec<TableReport>> {
    Ok(Json(tasks::verify(&m, &name, body.fix).await?))
}

pub async fn validation_status(
    State(m): State<Master>,
    Path(name): Path<String>,
) -> ApiResult<ValidationStatus> {
    Ok(Json(validation::status(&m, &name).await?))
}

pub async fn validation_start(
    State(m): State<Master>,
    Path(name): Path<String>,
    body: Option<Json<ValidationStart>>,
) -> ApiResult<ValidationStatus> {
    let interval = body.and_then(|Json(b)| b.interval_secs);
    Ok(Json(validation::start(&m, &name, interval).await?))
}

pub async fn validation_stop(
    State(m): State<Master>,
    Path(name): Path<String>,
) -> ApiResult<ValidationStatus> {
    Ok(Json(validation::stop(&m, &name).await?))
}
