//! Server-side helpers for server functions: the request's user and the shared state.

pub mod api_keys;
pub mod deliveries;
pub mod endpoints;
pub mod engine;
pub mod outbox;
pub mod secret_box;
pub mod team;
pub mod tokens;

use std::sync::Arc;

use axum::Extension;
use sea_orm::DatabaseConnection;

use crate::{AppError, CurrentUser};

/// What the server provides to every server function through Leptos context.
#[derive(Clone)]
pub struct AppContext {
    pub db: DatabaseConnection,
    pub engine: Arc<dyn engine::Engine>,
    pub outbox: Arc<dyn outbox::Outbox>,
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
pub async fn actor_and_context() -> Result<(endpoints::Actor, AppContext), AppError> {
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
