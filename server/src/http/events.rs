//! `POST /api/v1/events`: ingest one event or a batch (SPEC §6, §11); reading an event back
//! and the event catalogue.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::{
    body::Bytes,
    extract::{
        rejection::{BytesRejection, FailedToBufferBody},
        DefaultBodyLimit, Request, State,
    },
    http::{HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use entity::{
    api::{EventDetail, EventTypeInfo, EventTypeList},
    tables::account,
};
use sea_orm::EntityTrait;
use serde::Serialize;
use utoipa::ToSchema;

use super::{api_auth::ApiAccount, endpoints::ApiPath, error::ApiError, AppState};
use crate::{
    ingest::{self, IngestError, MAX_REQUEST_BYTES},
    quota::{self, Decision},
};

pub fn router(state: &AppState) -> Router<AppState> {
    let limit = MAX_REQUEST_BYTES;
    let shed = axum::middleware::from_fn_with_state(state.clone(), limit_in_flight);
    Router::new()
        .route("/api/v1/events", post(create).layer(DefaultBodyLimit::max(limit)).layer(shed))
        .route("/api/v1/events/{id}", get(show))
        .route("/api/v1/event-types", get(event_types))
}

/// The event with its deliveries to every endpoint of the account, each with its latest
/// attempt's summary (`GET /api/v1/deliveries/{id}` has the attempts).
#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events", params(("id" = String, Path)),
    responses((status = 200, body = EventDetail), (status = 404, body = super::error::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    account: ApiAccount,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EventDetail>, ApiError> {
    Ok(Json(service::deliveries::event(&state.db, &account.actor(), &id).await?))
}

/// The event catalogue: each type with its group, what it means and a sample payload.
#[utoipa::path(get, path = "/api/v1/event-types", tag = "events", responses((status = 200, body = EventTypeList)))]
pub async fn event_types(_account: ApiAccount) -> Json<EventTypeList> {
    Json(EventTypeList { data: entity::EventType::ALL.into_iter().map(EventTypeInfo::of).collect() })
}

#[derive(Serialize, ToSchema)]
pub struct IngestAnswer {
    /// Event ids in request order.
    pub ids: Vec<String>,
}

/// One event `{type, data:{object}, id?}` or a batch `{"events":[…]}` of up to 1,000.
/// Answers 202 once the events and their deliveries are committed.
#[utoipa::path(post, path = "/api/v1/events", tag = "events",
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat a request safely: the same key returns the original ids")),
    request_body(content = serde_json::Value, description = "`{type, data:{object}, id?}` or `{\"events\":[…]}`"),
    responses((status = 202, body = IngestAnswer), (status = 413, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody),
        (status = 429, body = super::error::ErrorBody, description = "The account's ingest quota is used up for this second (`rate_limited`)"),
        (status = 503, body = super::error::ErrorBody, description = "At capacity (`overloaded`) or the database is unavailable (`unavailable`); `Retry-After` says when to retry")))]
pub async fn create(
    State(state): State<AppState>,
    account: ApiAccount,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = match body {
        Ok(body) => body,
        Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
            let message = format!("the request body is over the limit of {MAX_REQUEST_BYTES} bytes; send fewer events");
            return Err(ApiError::TooLarge(message));
        }
        Err(rejection) => return Ok(rejection.into_response()),
    };
    admit(&state, &account)?;
    let events = ingest::parse_body(&body)?;
    let key = idempotency_key(&headers)?;
    let limit = account_quota(&state, &account).await?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let decision = take_quota(&state, account.0.as_str(), limit, events.len() as u64, now).await?;
    if !decision.allowed {
        return Ok(with_quota(ApiError::RateLimited(decision.reset_secs).into_response(), decision));
    }
    let ids = state.ingest.accept(&account.0, key.as_deref(), events).await?;
    let answer = IngestAnswer { ids: ids.into_iter().map(String::from).collect() };
    Ok(with_quota((StatusCode::ACCEPTED, Json(answer)).into_response(), decision))
}

/// Refuses the request while delivery is behind and this account is past its share of what
/// can be delivered in time (`ingest/admission.rs`).
fn admit(state: &AppState, account: &ApiAccount) -> Result<(), ApiError> {
    if state.admission.admits(account.0.as_str()) {
        Ok(())
    } else {
        Err(ApiError::Overloaded)
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value.to_str().map_err(|_| ApiError::Invalid("Idempotency-Key must be visible ASCII".into()))?.trim();
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::Invalid("Idempotency-Key must be 1 to 255 characters".into()));
    }
    Ok(Some(key.to_owned()))
}

/// The account's events-per-second quota, cached for `CACHE_TTL` (a change made elsewhere
/// applies within it).
async fn account_quota(state: &AppState, account: &ApiAccount) -> Result<u64, ApiError> {
    let now = Instant::now();
    if let Some(limit) = state.quotas.get(&account.0, now) {
        return Ok(limit);
    }
    let row = state.db_lookup(account::Entity::find_by_id(&account.0).one(&state.db)).await?;
    let limit = row.map_or(1, |a| a.ingest_rate_limit.max(1) as u64);
    state.quotas.put(account.0.clone(), limit, now);
    Ok(limit)
}

/// Spends the request's events from this process's slice of the account's window, reserving
/// a new slice from the shared window (one statement, about once a second per account and
/// process) when it is too small: the quota holds across processes (`quota.rs`).
async fn take_quota(state: &AppState, account: &str, limit: u64, cost: u64, now: u64) -> Result<Decision, ApiError> {
    if let Some(decision) = state.ingest_quota.take(account, limit, cost, now) {
        return Ok(decision);
    }
    if cost <= limit {
        let lock = state.ingest_quota.reservation_lock(account);
        let _reserving = lock.lock().await;
        // Another request may have reserved while this one waited.
        if let Some(decision) = state.ingest_quota.take(account, limit, cost, now) {
            return Ok(decision);
        }
        // A slice for the next requests too; failing that, just this request's events.
        let mut amounts = vec![quota::slice_for(limit, cost), cost];
        amounts.dedup();
        for amount in amounts {
            if state.ingest.database_down() {
                return Err(ApiError::Unavailable); // at once, rather than wait for a connection
            }
            let reserved = quota::reserve(state.ingest.pool(), account, now, amount, limit).await;
            let reserved = reserved.inspect_err(|err| state.ingest.report_error(err))?;
            if let Some(total) = reserved {
                state.ingest_quota.grant(account, amount, total, now);
                if let Some(decision) = state.ingest_quota.take(account, limit, cost, now) {
                    return Ok(decision);
                }
            }
        }
    }
    Ok(Decision::refused(limit, state.ingest_quota.remaining(account, limit, now)))
}

/// Refuses a request at once with 503 and `Retry-After` when `ingest_slots` requests are
/// already in flight, before its body is read: past capacity, excess load is turned away
/// fast instead of queueing in memory (SPEC §12, overload).
pub async fn limit_in_flight(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match state.ingest_slots.clone().try_acquire_owned() {
        Ok(permit) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        // Requests pile up when the database is gone: say so, not "at capacity".
        Err(_) if state.ingest.database_down() => ApiError::Unavailable.into_response(),
        Err(_) => ApiError::Overloaded.into_response(),
    }
}

/// IETF `RateLimit-*` headers on every answer, `Retry-After` on a 429.
fn with_quota(mut response: Response, d: Decision) -> Response {
    let headers = response.headers_mut();
    for (name, value) in
        [("ratelimit-limit", d.limit), ("ratelimit-remaining", d.remaining), ("ratelimit-reset", d.reset_secs)]
    {
        headers.insert(name, HeaderValue::from(value));
    }
    if !d.allowed {
        headers.insert("retry-after", HeaderValue::from(d.reset_secs));
    }
    response
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::Invalid(message) => ApiError::Invalid(message),
            IngestError::TooLarge { .. } => ApiError::TooLarge(err.to_string()),
            IngestError::Stopped | IngestError::Unavailable => ApiError::Unavailable,
            IngestError::IdTaken { .. } => ApiError::Conflict(err.to_string()),
            // One mapping for every database error (http/error.rs): a session PostgreSQL
            // terminated at shutdown is a 503 like a refused connection, not a 500.
            IngestError::Db(db) => db.into(),
        }
    }
}
