//! Delivery logs and recovery over REST (SPEC §11), over `service::deliveries`.

use ::service::deliveries as service;
use axum::http::StatusCode;
use axum::{
    extract::State,
    routing::{get, post},
    Json, Router,
};
use entity::api::{BulkRetry, BulkRetryRange, Delivery, DeliveryFilter, DeliveryPage, RecoverRequest};

use super::{
    api_auth::ApiAccount,
    endpoints::{ApiPath, ApiQuery},
    error::{ApiError, ApiJson},
    AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/endpoints/{id}/deliveries", get(list))
        .route("/api/v1/deliveries/{id}", get(show))
        .route("/api/v1/deliveries/{id}/retry", post(retry))
        .route("/api/v1/deliveries/{id}/replay", post(replay))
        .route("/api/v1/endpoints/{id}/bulk-retry", post(bulk_retry))
        .route("/api/v1/bulk-retries/{id}", get(bulk_retry_status))
        .route("/api/v1/endpoints/{id}/recover", post(recover))
}

/// Sends the endpoint the events since `since` (within the log retention) that it
/// subscribes to and never got, for instance while it was disabled, as a background job
/// like a bulk retry (`GET /bulk-retries/{id}` follows it). Recovering again adds nothing
/// twice; while one runs for the endpoint, starting another returns it.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/recover", tag = "deliveries", params(("id" = String, Path)),
    request_body = RecoverRequest,
    responses((status = 202, body = BulkRetry), (status = 404, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn recover(
    State(state): State<AppState>,
    account: ApiAccount,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<RecoverRequest>,
) -> Result<(StatusCode, Json<BulkRetry>), ApiError> {
    let job = service::recover_start(&state.db, state.engine.as_ref(), &account.actor(), &id, request.since).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

#[utoipa::path(get, path = "/api/v1/endpoints/{id}/deliveries", tag = "deliveries",
    params(("id" = String, Path), DeliveryFilter),
    responses((status = 200, body = DeliveryPage), (status = 404, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    account: ApiAccount,
    ApiPath(id): ApiPath<String>,
    ApiQuery(filter): ApiQuery<DeliveryFilter>,
) -> Result<Json<DeliveryPage>, ApiError> {
    Ok(Json(service::list(&state.db, &account.actor(), &id, &filter).await?))
}

#[utoipa::path(get, path = "/api/v1/deliveries/{id}", tag = "deliveries", params(("id" = String, Path)),
    responses((status = 200, body = Delivery), (status = 404, body = super::error::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    account: ApiAccount,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(service::get(&state.db, &account.actor(), &id).await?))
}

/// Queues a failed delivery for another attempt, or sends a pending one that waits for its
/// next retry now. Either way the delivery gets a fresh attempt budget.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/retry", tag = "deliveries", params(("id" = String, Path)),
    responses((status = 200, body = Delivery), (status = 404, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    account: ApiAccount,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(service::resend(&state.db, &account.actor(), &id, false).await?))
}

/// Sends a delivered event again, with the same `webhook-id`.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/replay", tag = "deliveries", params(("id" = String, Path)),
    responses((status = 200, body = Delivery), (status = 404, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replay(
    State(state): State<AppState>,
    account: ApiAccount,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(service::resend(&state.db, &account.actor(), &id, true).await?))
}

/// Resends the endpoint's failed deliveries created in `[since, until)` as a background job.
/// Starting the same range again while it runs returns the running job.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/bulk-retry", tag = "deliveries", params(("id" = String, Path)),
    request_body = BulkRetryRange,
    responses((status = 202, body = BulkRetry), (status = 404, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn bulk_retry(
    State(state): State<AppState>,
    account: ApiAccount,
    ApiPath(id): ApiPath<String>,
    ApiJson(range): ApiJson<BulkRetryRange>,
) -> Result<(StatusCode, Json<BulkRetry>), ApiError> {
    let bulk = service::bulk_retry_start(&state.db, state.engine.as_ref(), &account.actor(), &id, &range).await?;
    Ok((StatusCode::ACCEPTED, Json(bulk)))
}

#[utoipa::path(get, path = "/api/v1/bulk-retries/{id}", tag = "deliveries", params(("id" = String, Path)),
    responses((status = 200, body = BulkRetry), (status = 404, body = super::error::ErrorBody)))]
pub async fn bulk_retry_status(
    State(state): State<AppState>,
    account: ApiAccount,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<BulkRetry>, ApiError> {
    Ok(Json(state.engine.bulk_retry_status(account.0.as_str(), &id).await?))
}
