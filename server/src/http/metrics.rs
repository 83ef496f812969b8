//! `GET /metrics` in the Prometheus text format. When `WEBHOOKS_METRICS_TOKEN` is set the
//! scraper must send it as a Bearer token: queue sizes are not for the public internet.

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use sea_orm::DatabaseConnection;
use sqlx::PgPool;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::metrics;

pub fn router() -> Router<AppState> {
    metrics::install();
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let db: &DatabaseConnection = &state.db;
    render(db.get_postgres_connection_pool(), state.config.metrics_token.as_deref(), &headers).await
}

/// `/metrics` alone, for a `worker` process (it serves no dashboard): see
/// `WEBHOOKS_WORKER_METRICS_LISTEN`.
pub async fn serve_alone(
    listener: tokio::net::TcpListener,
    pool: PgPool,
    token: Option<String>,
) -> std::io::Result<()> {
    metrics::install();
    let app = Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let (pool, token) = (pool.clone(), token.clone());
            async move { render(&pool, token.as_deref(), &headers).await }
        }),
    );
    axum::serve(listener, app).await
}

/// Compared in constant time, so response timing says nothing about how much of a guess was
/// right (only whether its length was).
fn token_matches(sent: Option<&str>, token: &str) -> bool {
    sent.is_some_and(|sent| bool::from(sent.as_bytes().ct_eq(token.as_bytes())))
}

async fn render(pool: &PgPool, token: Option<&str>, headers: &HeaderMap) -> Response {
    if let Some(token) = token {
        if !token_matches(super::api_auth::bearer_token(headers), token) {
            let body = "Send the WEBHOOKS_METRICS_TOKEN as `Authorization: Bearer <token>`.\n";
            return (StatusCode::UNAUTHORIZED, body).into_response();
        }
    }
    // The counters are still worth serving while the database is away; the gauges are left out.
    let gauges = match metrics::queue_gauges(pool).await {
        Ok(g) => Some(g),
        Err(err) => {
            tracing::warn!(%err, "metrics: queue gauges unavailable");
            None
        }
    };
    let body = metrics::render(metrics::install(), gauges.as_ref());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_opens_metrics() {
        assert!(token_matches(Some("s3cret"), "s3cret"));
        assert!(!token_matches(Some("s3cre"), "s3cret"));
        assert!(!token_matches(Some("s3cret!"), "s3cret"));
        assert!(!token_matches(Some("S3cret"), "s3cret"));
        assert!(!token_matches(None, "s3cret"));
    }
}
