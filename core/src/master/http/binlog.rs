//! Handlers of `/api/v1/tasks/{name}/binlog*`: what to do with a source transaction a task
//! stopped at, and the schema dm tracks for the binlog.

use super::ApiResult;
use crate::api::types::*;
use crate::master::{binlog_ops, binlog_schema, Master};
use axum::extract::{Path, Query, State};
use axum::Json;

pub async fn skip(
    State(m): State<Master>,
    Path(name): Path<String>,
    body: Option<Json<BinlogAt>>,
) -> ApiResult<TaskView> {
    let at = body.map(|Json(b)| b).unwrap_or_default();
    Ok(Json(binlog_ops::skip(&m, &name, &at).await?))
}

pub async fn replace(
    State(m): State<Master>,
    Path(name): Path<String>,
    Json(body): Json<BinlogStatements>,
) -> ApiResult<TaskView> {
    Ok(Json(binlog_ops::replace(&m, &name, &body).await?))
}

pub async fn inject(
    State(m): State<Master>,
    Path(name): Path<String>,
    Json(body): Json<BinlogStatements>,
) -> ApiResult<TaskView> {
    Ok(Json(binlog_ops::inject(&m, &name, &body).await?))
}

pub async fn revert(
    State(m): State<Master>,
    Path(name): Path<String>,
    Json(at): Json<BinlogAt>,
) -> ApiResult<TaskView> {
    Ok(Json(binlog_ops::revert(&m, &name, &at).await?))
}

pub async fn list(
    State(m): State<Master>,
    Path(name): Path<String>,
) -> ApiResult<Vec<BinlogOperator>> {
    Ok(Json(binlog_ops::list(&m, &name).await?))
}

pub async fn schema_list(
    State(m): State<Master>,
    Path(name): Path<String>,
    Query(q): Query<SchemaQuery>,
) -> ApiResult<Vec<TrackedTable>> {
    Ok(Json(
        binlog_schema::list(&m, &name, q.source.as_deref()).await?,
    ))
}

pub async fn schema_change(
    State(m): State<Master>,
    Path(name): Path<String>,
    Json(change): Json<SchemaChange>,
) -> ApiResult<Vec<TrackedTable>> {
    Ok(Json(binlog_schema::change(&m, &name, &change).await?))
}
