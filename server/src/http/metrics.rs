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

use super::AppState;
use crate::metrics;

pub fn router() -> Router<AppState> {
    metrics::install();
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = state.config.metrics_token.as_deref() {
        let sent = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if sent != Some(token) {
            let body = "Send the WEBHOOKS_METRICS_TOKEN as `Authorization: Bearer <token>`.\n";
            return (StatusCode::UNAUTHORIZED, body).into_response();
        }
    }
    let db: &DatabaseConnection = &state.db;
    // The counters are still worth serving while the database is away; the gauges are left out.
    let gauges = match metrics::queue_gauges(db.get_postgres_connection_pool()).await {
        Ok(g) => Some(g),
        Err(err) => {
            tracing::warn!(%err, "metrics: queue gauges unavailable");
            None
        }
    };
    let body = metrics::render(metrics::install(), gauges.as_ref());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
