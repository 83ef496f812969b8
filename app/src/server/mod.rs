//! Server-side glue for server functions: the request's user and the shared state. The rules
//! themselves are the `service` crate's.

use std::sync::Arc;

use axum::Extension;
use sea_orm::DatabaseConnection;
use service::{engine::Engine, outbox::Outbox, Actor, ServiceError, UserActor};

use crate::{AppError, CurrentUser};

/// What the server provides to every server function through Leptos context.
#[derive(Clone)]
pub struct AppContext {
    pub db: DatabaseConnection,
    pub engine: Arc<dyn Engine>,
    pub outbox: Arc<dyn Outbox>,
}

pub fn context() -> Result<AppContext, AppError> {
    leptos::prelude::use_context::<AppContext>()
        .ok_or_else(|| AppError::internal("AppContext missing from the Leptos context"))
}

/// The logged-in user, or `Unauthorized`. Every data-touching server function calls this.
pub async fn require_user() -> Result<CurrentUser, AppError> {
    match leptos_axum::extract::<Option<Extension<CurrentUser>>>().await {
        Ok(Some(Extension(user))) => Ok(user),
        Ok(None) => Err(AppError::Unauthorized),
        Err(err) => Err(AppError::internal(err)),
    }
}

/// The logged-in user as the services see them, and the shared state: what every data
/// server function starts with.
pub async fn actor_and_context() -> Result<(Actor, AppContext), AppError> {
    let user = require_user().await?;
    Ok(((&user).into(), context()?))
}

/// The logged-in user as the team rules see them, and the shared state.
pub async fn user_and_context() -> Result<(UserActor, AppContext), AppError> {
    let user = require_user().await?;
    Ok(((&user).into(), context()?))
}

/// Like `require_user`, and the user's role may change things (SPEC §9).
pub async fn require_writer() -> Result<CurrentUser, AppError> {
    let user = require_user().await?;
    if user.role.can_write() {
        Ok(user)
    } else {
        Err(AppError::Forbidden)
    }
}

/// The shared rules' errors as the dashboard shows them: the same messages; internal causes
/// were logged where they arose.
impl From<ServiceError> for AppError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Forbidden => AppError::Forbidden,
            ServiceError::NotFound => AppError::NotFound,
            ServiceError::Invalid { field, message } => AppError::Invalid { field, message },
            ServiceError::Validation(errors) => AppError::Validation(errors),
            ServiceError::Internal => AppError::Internal,
        }
    }
}
