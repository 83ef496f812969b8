//! `ApiError`: the REST API's one error type, mapped to HTTP in one `match`.

use axum::{
    http::{Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use serde_json::json;
use service::ServiceError;
use utoipa::ToSchema;

use crate::db;

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

/// Any path under `/api/v1` that no route matches gets the API's JSON 404, not the
/// dashboard's HTML page.
pub async fn unknown_api_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no API route {method} {}; the routes are listed at /api/v1/openapi.json", uri.path()))
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
    #[error("the database is unavailable; retry later")]
    Unavailable,
    #[error("the server is at capacity; retry after {RETRY_AFTER_OVERLOADED} s")]
    Overloaded,
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
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// Seconds a client is asked to wait after a 503 (the database is back within seconds of a
/// restart or failover; the pool reconnects on its own).
pub const RETRY_AFTER_UNAVAILABLE: u64 = 5;
/// Seconds a client is asked to wait after being refused for capacity: the queue it would
/// have joined is gone within about that.
pub const RETRY_AFTER_OVERLOADED: u64 = 1;

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        if db::orm_unavailable(&err) {
            tracing::warn!(%err, "database unavailable; answering 503");
            return ApiError::Unavailable;
        }
        ApiError::Internal(err.into())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if db::unavailable(&err) {
            tracing::warn!(%err, "database unavailable; answering 503");
            return ApiError::Unavailable;
        }
        ApiError::Internal(err.into())
    }
}

/// The service layer speaks `ServiceError`; this is where it becomes HTTP for API clients.
impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound => ApiError::NotFound("no such resource in this account".into()),
            ServiceError::Forbidden => ApiError::Forbidden(err.to_string()),
            ServiceError::Invalid { field, message } => ApiError::Invalid(format!("{field}: {message}")),
            ServiceError::Validation(errors) => {
                let parts: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
                ApiError::Invalid(parts.join(" "))
            }
            ServiceError::Internal => ApiError::Internal(anyhow::anyhow!("{err}")),
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
        let mut response = (status, Json(body)).into_response();
        let retry_after = match self {
            ApiError::Unavailable => Some(RETRY_AFTER_UNAVAILABLE),
            ApiError::Overloaded => Some(RETRY_AFTER_OVERLOADED),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
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

#[cfg(test)]
mod tests {
    use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};

    use super::*;
    use crate::db::PgCode;

    fn status(err: impl Into<ApiError>) -> StatusCode {
        err.into().into_response().status()
    }

    #[test]
    fn an_unreachable_database_is_a_503_and_a_wrong_query_a_500() {
        let refused = || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(status(sqlx::Error::PoolTimedOut), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(refused()), StatusCode::SERVICE_UNAVAILABLE);
        // The server terminating our session (a restart, `pg_ctl stop -m fast`).
        assert_eq!(status(sqlx::Error::Database(Box::new(PgCode("57P01")))), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(sqlx::Error::Database(Box::new(PgCode("08006")))), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            status(DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(refused())))),
            StatusCode::SERVICE_UNAVAILABLE
        );

        assert_eq!(status(sqlx::Error::Database(Box::new(PgCode("42P01")))), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status(sqlx::Error::RowNotFound), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status(DbErr::Custom("bug".into())), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn service_errors_keep_their_messages_in_the_dashboard_and_their_statuses_in_the_api() {
        let field = entity::endpoint_input::FieldError { field: "url".into(), message: "Enter a URL.".into() };
        let cases = [
            (ServiceError::Forbidden, StatusCode::FORBIDDEN),
            (ServiceError::NotFound, StatusCode::NOT_FOUND),
            (ServiceError::invalid("since", "The start must be in the past."), StatusCode::UNPROCESSABLE_ENTITY),
            (ServiceError::Validation(vec![field]), StatusCode::UNPROCESSABLE_ENTITY),
            (ServiceError::Internal, StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (err, code) in cases {
            assert_eq!(app::AppError::from(err.clone()).to_string(), err.to_string());
            assert_eq!(status(err), code);
        }
    }

    #[test]
    fn a_503_says_why_and_when_to_retry() {
        let response = ApiError::Unavailable.into_response();
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], RETRY_AFTER_UNAVAILABLE.to_string().as_str());
        let response = ApiError::Internal(anyhow::anyhow!("x")).into_response();
        assert!(response.headers().get(axum::http::header::RETRY_AFTER).is_none());
    }
}
