//! Live delivery-log updates: server-sent events fed by PostgreSQL notifications. The
//! recorder announces the endpoints of the attempts it committed on `webhooks_attempts`
//! (several ids per notification, at most one every 100 ms per worker process, `wake`); one
//! LISTEN connection per process fans the ids out to the open dashboards.

use std::{convert::Infallible, time::Duration};

use ::service::endpoints as service;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::get,
    Extension, Router,
};
use entity::session::CurrentUser;
use sqlx::{postgres::PgListener, PgPool};
use tokio::sync::broadcast;
use tokio_stream::{wrappers::BroadcastStream, StreamExt};

use super::AppState;
use crate::wake::{self, ATTEMPTS_CHANNEL};

pub fn router() -> Router<AppState> {
    Router::new().route("/live/endpoints/{id}", get(stream))
}

/// Forwards attempt notifications to `tx` until the process ends, reconnecting after a
/// database outage.
pub async fn relay(pool: PgPool, tx: broadcast::Sender<String>) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if listener.listen(ATTEMPTS_CHANNEL).await.is_ok() {
                    while let Ok(n) = listener.recv().await {
                        for endpoint in wake::names(n.payload()) {
                            let _ = tx.send(endpoint.to_owned());
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(%err, "live updates: LISTEN failed; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn stream(
    State(state): State<AppState>,
    user: Option<Extension<CurrentUser>>,
    Path(id): Path<String>,
) -> Response {
    let Some(Extension(user)) = user else {
        return (StatusCode::UNAUTHORIZED, "log in first").into_response();
    };
    if service::get(&state.db, &(&user).into(), &id).await.is_err() {
        return (StatusCode::NOT_FOUND, "no such endpoint").into_response();
    }
    let events = BroadcastStream::new(state.live.subscribe()).filter_map(move |n| match n {
        Ok(endpoint) if endpoint == id => Some(Ok::<_, Infallible>(Event::default().event("attempt").data(endpoint))),
        // A lagging client missed some: one refresh covers them all.
        Err(_) => Some(Ok(Event::default().event("attempt").data("lagged"))),
        Ok(_) => None,
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}
