//! `ServiceError`: the one error type of the shared rules. Each boundary maps it once: `app`
//! to `AppError` for the dashboard, `server`'s `http/error.rs` to `ApiError` for the REST
//! API. Messages are written for the user; internal causes are logged where they are
//! converted and never carried further.

use entity::{endpoint_input::FieldError, team::TeamRuleError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("Your role does not allow this change. Ask an owner or admin.")]
    Forbidden,
    #[error("Not found.")]
    NotFound,
    /// A rule broken by one input field; forms show `message` beside `field`.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// Several broken rules at once, each with its field.
    #[error("{}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" "))]
    Validation(Vec<FieldError>),
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
}

impl ServiceError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ServiceError::Invalid { field: field.to_owned(), message: message.into() }
    }

    /// Logs the cause once, here, and keeps it out of the response.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error in a server function");
        ServiceError::Internal
    }
}

impl From<sea_orm::DbErr> for ServiceError {
    fn from(err: sea_orm::DbErr) -> Self {
        match err {
            // The row was read, then deleted by a concurrent request before the update:
            // from the caller's side it is simply gone (schemathesis found this as a 500).
            sea_orm::DbErr::RecordNotUpdated => ServiceError::NotFound,
            err => ServiceError::internal(err),
        }
    }
}

impl From<TeamRuleError> for ServiceError {
    fn from(err: TeamRuleError) -> Self {
        match err {
            TeamRuleError::NotAManager => ServiceError::Forbidden,
            other => ServiceError::invalid("member", other.to_string()),
        }
    }
}
