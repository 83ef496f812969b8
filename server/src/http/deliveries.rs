//! Delivery logs and recovery over REST (SPEC §11), over `app::server::deliveries`.

use app::server::deliveries as service;
use axum::{
    extract::{Path, Query, State},
    routing::{get, post},
    Json, Router,
};
use entity::api::{Delivery, DeliveryFilter, DeliveryPage};

use super::{api_auth::ApiAccount, error::ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/endpoints/{id}/deliveries", get(list))
        .route("/api/v1/deliveries/{id}", get(show))
        .route("/api/v1/deliveries/{id}/retry", post(retry))
        .route("/api/v1/deliveries/{id}/replay", post(replay))
}

#[utoipa::path(get, path = "/api/v1/endpoints/{id}/deliveries", tag = "deliveries",
    params(("id" = String, Path), DeliveryFilter),
    responses((status = 200, body = DeliveryPage), (status = 404, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    account: ApiAccount,
    Path(id): Path<String>,
    Query(filter): Query<DeliveryFilter>,
) -> Result<Json<DeliveryPage>, ApiError> {
    Ok(Json(service::list(&state.db, &account.actor(), &id, &filter).await?))
}

#[utoipa::path(get, path = "/api/v1/deliveries/{id}", tag = "deliveries", params(("id" = String, Path)),
    responses((status = 200, body = Delivery), (status = 404, body = super::error::ErrorBody)))]
pub async fn show(State(state): State<AppState>, account: ApiAccount, Path(id): Path<String>) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(service::get(&state.db, &account.actor(), &id).await?))
}

/// Queues a failed delivery for another attempt.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/retry", tag = "deliveries", params(("id" = String, Path)),
    responses((status = 200, body = Delivery), (status = 404, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn retry(State(state): State<AppState>, account: ApiAccount, Path(id): Path<String>) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(service::resend(&state.db, &account.actor(), &id, false).await?))
}

/// Sends a delivered event again, with the same `webhook-id`.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/replay", tag = "deliveries", params(("id" = String, Path)),
    responses((status = 200, body = Delivery), (status = 404, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replay(State(state): State<AppState>, account: ApiAccount, Path(id): Path<String>) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(service::resend(&state.db, &account.actor(), &id, true).await?))
}
