//! Handlers of the cluster-wide routes: shard DDL locks, members and the leader, stored
//! config files, etcd discovery for workers, and `/metrics`.

use super::{ApiError, ApiResult};
use crate::api::types::*;
use crate::master::{config_api, members, prometheus, shard_locks, Master};
use axum::extract::{Path, Query, State};
use axum::Json;

pub async fn shard_locks(
    State(m): State<Master>,
    Query(q): Query<LockQuery>,
) -> ApiResult<Vec<LockReport>> {
    Ok(Json(shard_locks::list(&m, q.task.as_deref()).await?))
}

pub async fn shard_unlock(
    State(m): State<Master>,
    Json(body): Json<UnlockBody>,
) -> ApiResult<Unlocked> {
    Ok(Json(shard_locks::unlock(&m, &body).await?))
}

pub async fn members(State(m): State<Master>) -> ApiResult<Members> {
    Ok(Json(members::list(&m).await?))
}

pub async fn offline_member(
    State(m): State<Master>,
    Path((kind, name)): Path<(String, String)>,
) -> ApiResult<Offline> {
    Ok(Json(members::offline(&m, &kind, &name).await?))
}

pub async fn operate_leader(
    State(m): State<Master>,
    Path(op): Path<String>,
) -> ApiResult<LeaderAnswer> {
    Ok(Json(members::operate_leader(&m, &op).await?))
}

pub async fn export_config(State(m): State<Master>) -> ApiResult<Vec<ConfigFile>> {
    Ok(Json(config_api::export(&m).await?))
}

pub async fn get_config(
    State(m): State<Master>,
    Path((kind, name)): Path<(String, String)>,
) -> ApiResult<ConfigFile> {
    Ok(Json(config_api::get(&m, &kind, &name).await?))
}

/// etcd client URLs, for workers that know only the masters.
pub async fn etcd_endpoints(State(m): State<Master>) -> Json<EtcdDiscovery> {
    Json(members::etcd_endpoints(&m))
}

pub async fn metrics(State(m): State<Master>) -> Result<String, ApiError> {
    Ok(prometheus::render(&m).await?)
}
