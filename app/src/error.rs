use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

/// The one error type of the dashboard's server functions. Messages are written for the
/// user; internal causes are logged on the server where they are converted, never sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("Your session has ended. Please log in again.")]
    Unauthorized,
    #[error("Your role does not allow this change. Ask an owner or admin.")]
    Forbidden,
    #[error("Not found.")]
    NotFound,
    /// A rule broken by one input field; forms show `message` beside `field`.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// Several broken rules at once, each with its field.
    #[error("{}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" "))]
    Validation(Vec<entity::endpoint_input::FieldError>),
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    #[error("The server could not be reached. Check your connection and try again.")]
    Transport(String),
}

impl AppError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AppError::Invalid { field: field.to_owned(), message: message.into() }
    }

    /// The message for one form field, if this error is about it.
    pub fn for_field(&self, field: &str) -> Option<String> {
        match self {
            AppError::Invalid { field: f, message } if f == field => Some(message.clone()),
            AppError::Validation(errors) => errors.iter().find(|e| e.field == field).map(|e| e.message.clone()),
            _ => None,
        }
    }

    /// Logs the cause once, here, and keeps it out of the response.
    #[cfg(feature = "ssr")]
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error in a server function");
        AppError::Internal
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

#[cfg(feature = "ssr")]
impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        match err {
            // The row was read, then deleted by a concurrent request before the update:
            // from the caller's side it is simply gone (schemathesis found this as a 500).
            sea_orm::DbErr::RecordNotUpdated => AppError::NotFound,
            err => AppError::internal(err),
        }
    }
}
