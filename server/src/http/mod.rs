//! The HTTP surface: each module owns its routes; `router` only merges them.

pub mod api_auth;
pub mod auth;
pub mod deliveries;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod health;
pub mod invitations;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod security;

use std::sync::Arc;

use app::{server::AppContext, shell, App};
use axum::{extract::FromRef, middleware, routing::any, Router};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use sea_orm::DatabaseConnection;
use service::engine::Engine;

use crate::{config::Config, ttl_cache::TtlCache};

/// How long a cached API key or quota is trusted: a key revoked or a quota changed by another
/// process applies within this.
pub const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// Entries a cache holds before it starts over.
pub const CACHE_CAPACITY: usize = 100_000;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub engine: Arc<dyn Engine>,
    pub ingest_quota: Arc<crate::quota::IngestQuota>,
    /// Group commit and wake-ups (`ingest::Ingest`).
    pub ingest: Arc<crate::ingest::Ingest>,
    /// Ingest requests in flight; past it, requests are refused with 503 (`events.rs`).
    pub ingest_slots: Arc<tokio::sync::Semaphore>,
    /// Whether delivery keeps up, per account and overall; read on every ingest request.
    pub admission: Arc<crate::ingest::admission::Admission>,
    /// API key hash → account, and account → ingest quota, for `CACHE_TTL`.
    pub api_keys: Arc<TtlCache<String, entity::AccountId>>,
    pub quotas: Arc<TtlCache<entity::AccountId, u64>>,
    /// Endpoint ids with a new attempt, for the live delivery log.
    pub live: tokio::sync::broadcast::Sender<String>,
    pub leptos_options: LeptosOptions,
}

impl AppState {
    /// A lookup on the request path outside ingest's pool (API keys, quotas): 503 at once
    /// while the database is known down; when it finds the database unreachable, ingest
    /// checks at once, so the requests behind this one get a quick 503 instead of each
    /// waiting out the pool's acquire timeout.
    pub async fn db_lookup<T>(
        &self,
        query: impl std::future::Future<Output = Result<T, sea_orm::DbErr>>,
    ) -> Result<T, error::ApiError> {
        if self.ingest.database_down() {
            return Err(error::ApiError::Unavailable);
        }
        query.await.map_err(|err| {
            if crate::db::orm_unavailable(&err) {
                self.ingest.check_database();
            }
            err.into()
        })
    }
}

pub fn router(state: AppState) -> Router {
    let outbox = Arc::new(crate::jobs::notify::EmailQueue { pool: state.db.get_postgres_connection_pool().clone() });
    let context = AppContext { db: state.db.clone(), engine: state.engine.clone(), outbox };
    let options = state.leptos_options.clone();
    let pages = Router::new()
        .leptos_routes_with_context(
            &state,
            generate_route_list(App),
            move || {
                provide_context(context.clone());
                security::page_csp();
            },
            move || shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(security::page_csp, shell));
    let router = pages
        .merge(auth::router())
        .merge(invitations::router())
        .merge(health::router())
        .merge(endpoints::router())
        .merge(events::router(&state))
        .merge(deliveries::router())
        .merge(live::router())
        .merge(metrics::router())
        .merge(openapi::router())
        .route("/api/v1", any(error::unknown_api_route))
        .route("/api/v1/{*rest}", any(error::unknown_api_route))
        .layer(middleware::from_fn_with_state(state.clone(), auth::session_middleware))
        .layer(middleware::from_fn_with_state(state.clone(), security::same_origin))
        .layer(middleware::from_fn(security::server_fn_status))
        .with_state(state);
    security::harden(router)
}
