//! `ApiError`: the REST API's one error type, mapped to HTTP in one `match`.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use app::AppError;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// `{"error":{"code","message"}}`, the body of every API error (SPEC §11).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid API key; send `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("this account's ingest quota is used up for this second; retry after {0} s")]
    RateLimited(u64),
    #[error("the database is unavailable; retry shortly")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        match err {
            sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_) => ApiError::Unavailable,
            other => ApiError::Internal(other.into()),
        }
    }
}

/// The service layer speaks `AppError`; this is where it becomes HTTP for API clients.
impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::NotFound => ApiError::NotFound("no such resource in this account".into()),
            AppError::Forbidden => ApiError::Forbidden(err.to_string()),
            AppError::Unauthorized => ApiError::Unauthorized,
            AppError::Invalid { field, message } => ApiError::Invalid(format!("{field}: {message}")),
            AppError::Validation(errors) => {
                let parts: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
                ApiError::Invalid(parts.join(" "))
            }
            AppError::Internal | AppError::Transport(_) => ApiError::Internal(anyhow::anyhow!("{err}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(cause = ?cause, "internal error in an API handler");
        }
        let (status, code) = self.parts();
        let body = json!({ "error": { "code": code, "message": self.to_string() } });
        (status, Json(body)).into_response()
    }
}

/// `Json<T>` whose rejections are API errors with a message saying what to fix.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        ApiError::Invalid(format!("the request body was not accepted: {}", rejection.body_text()))
    }
}
