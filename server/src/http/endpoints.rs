//! `/api/v1/endpoints`: thin handlers over `service::endpoints`, the same functions the
//! dashboard's server functions call.

use ::service::endpoints as service;
use axum::{
    extract::State,
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use entity::{
    api::{Endpoint, EndpointWithSecret, TestOutcome},
    endpoint_input::{EndpointInput, EndpointPatch},
    EventType,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    api_auth::ApiAccount,
    error::{ApiError, ApiJson},
    AppState,
};

/// `Path` and `Query` whose rejections are API errors in the JSON shape of SPEC §11, not
/// axum's plain-text 400 (found by schemathesis: `%FF` in an id, `?status=bogus`).
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(_: axum::extract::rejection::PathRejection) -> Self {
        // An id that is not even valid text names nothing in any account.
        ApiError::NotFound("no such resource in this account".into())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::Invalid(format!("the query string was not accepted: {}", rejection.body_text()))
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/endpoints", get(list).post(create))
        .route("/api/v1/endpoints/{id}", get(show).patch(update).delete(remove))
        .route("/api/v1/endpoints/{id}/secret", get(secret))
        .route("/api/v1/endpoints/{id}/secret/rotate", post(rotate))
        .route("/api/v1/endpoints/{id}/test", post(test_send))
}

#[derive(Serialize, ToSchema)]
pub struct EndpointList {
    pub data: Vec<Endpoint>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct TestRequest {
    pub event_type: EventType,
}

#[utoipa::path(get, path = "/api/v1/endpoints", tag = "endpoints",
    responses((status = 200, body = EndpointList), (status = 401, body = super::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, account: ApiAccount) -> Result<Json<EndpointList>, ApiError> {
    let data = service::list(&state.db, &account.0).await?;
    Ok(Json(EndpointList { data, next_cursor: None }))
}

#[utoipa::path(post, path = "/api/v1/endpoints", tag = "endpoints", request_body = EndpointInput,
    responses((status = 201, body = EndpointWithSecret), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    account: ApiAccount,
    ApiJson(input): ApiJson<EndpointInput>,
) -> Result<(StatusCode, Json<EndpointWithSecret>), ApiError> {
    let created = service::create(&state.db, state.engine.as_ref(), &account.actor(), input).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/endpoints/{id}", tag = "endpoints", params(("id" = String, Path)),
    responses((status = 200, body = Endpoint), (status = 404, body = super::error::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    account: ApiAccount,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Endpoint>, ApiError> {
    Ok(Json(service::get(&state.db, &account.actor(), &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/endpoints/{id}", tag = "endpoints", params(("id" = String, Path)),
    request_body = EndpointPatch,
    responses((status = 200, body = Endpoint), (status = 404, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    account: ApiAccount,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<EndpointPatch>,
) -> Result<Json<Endpoint>, ApiError> {
    Ok(Json(service::update(&state.db, state.engine.as_ref(), &account.actor(), &id, patch).await?))
}

#[utoipa::path(delete, path = "/api/v1/endpoints/{id}", tag = "endpoints", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    account: ApiAccount,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    service::delete(&state.db, &account.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/endpoints/{id}/secret", tag = "endpoints", params(("id" = String, Path)),
    responses((status = 200, body = EndpointWithSecret), (status = 404, body = super::error::ErrorBody)))]
pub async fn secret(
    State(state): State<AppState>,
    account: ApiAccount,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EndpointWithSecret>, ApiError> {
    Ok(Json(service::secret(&state.db, &account.actor(), &id).await?))
}

#[utoipa::path(post, path = "/api/v1/endpoints/{id}/secret/rotate", tag = "endpoints", params(("id" = String, Path)),
    responses((status = 200, body = EndpointWithSecret), (status = 404, body = super::error::ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    account: ApiAccount,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EndpointWithSecret>, ApiError> {
    Ok(Json(service::rotate_secret(&state.db, state.engine.as_ref(), &account.actor(), &id).await?))
}

#[utoipa::path(post, path = "/api/v1/endpoints/{id}/test", tag = "endpoints", params(("id" = String, Path)),
    request_body = TestRequest,
    responses((status = 200, body = TestOutcome), (status = 404, body = super::error::ErrorBody)))]
pub async fn test_send(
    State(state): State<AppState>,
    account: ApiAccount,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<TestRequest>,
) -> Result<Json<TestOutcome>, ApiError> {
    let outcome = service::send_test(&state.db, state.engine.as_ref(), &account.actor(), &id, req.event_type).await?;
    Ok(Json(outcome))
}
