use std::time::Duration;

use axum::{extract::State, http::StatusCode, routing::get, Json, Router};
use sea_orm::DatabaseConnection;
use serde_json::{json, Value};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// The process is up; says nothing about its dependencies.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// A probe must answer within the orchestrator's timeout (often 1-3 s), whatever the pool does.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Ready to serve: the database answers, within `READY_TIMEOUT`.
async fn readyz(State(db): State<DatabaseConnection>) -> (StatusCode, Json<Value>) {
    let error = match tokio::time::timeout(READY_TIMEOUT, db.ping()).await {
        Ok(Ok(())) => return (StatusCode::OK, Json(json!({ "status": "ready", "database": "ok" }))),
        Ok(Err(err)) => err.to_string(),
        Err(_) => format!("no answer within {} s", READY_TIMEOUT.as_secs()),
    };
    tracing::warn!(%error, "readiness check: database unreachable");
    let body = json!({ "status": "unavailable", "database": "unreachable" });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body))
}
