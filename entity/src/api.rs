//! Resource shapes shared by the REST API and the dashboard (SPEC §11).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{DeliveryStatus, EndpointId, EndpointStatus, EventType};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Endpoint {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "ep_01hq3k5v8w9x2y3z4a5b6c7d8e"))]
    pub id: EndpointId,
    pub url: String,
    pub description: String,
    pub event_types: Vec<EventType>,
    pub enabled: bool,
    pub status: EndpointStatus,
    pub rate_limit: i32,
    #[serde(flatten)]
    pub health: EndpointHealth,
    pub created_at: DateTime<Utc>,
}

/// Why an endpoint is failing or disabled, and since when (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointHealth {
    /// Failed attempts in a row; any 2xx resets it. Failing from 5.
    pub consecutive_failures: i32,
    /// The last failed attempt's outcome, e.g. `HTTP 500` or a timeout; kept after a success.
    pub last_error: Option<String>,
    /// Why it was disabled: by a user, or automatically (a dead letter while failing, or 410).
    pub disabled_reason: Option<String>,
    /// When it stopped being healthy (turned failing, or was disabled); null while healthy.
    pub failing_since: Option<DateTime<Utc>>,
    /// When the status last changed (the endpoint's creation if it never has).
    pub status_since: DateTime<Utc>,
    /// While failing: the circuit breaker lets the next attempt through at this time.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// An endpoint together with its signing secret: returned by create, rotate and
/// `GET /endpoints/{id}/secret`, never by lists (SPEC §11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    pub secret: String,
}

/// The outcome of a test send, shown inline beside the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestOutcome {
    pub success: bool,
    pub status_code: Option<u16>,
    pub response_time_ms: u64,
    /// The first lines of the response body.
    pub body_excerpt: String,
    /// The network error, when there was no HTTP response.
    pub error: Option<String>,
    /// The test event sent; the send is in the delivery log as a test delivery of it.
    #[serde(default)]
    pub event_id: String,
}

/// A delivery of one event to one endpoint (SPEC §11). Lists carry the latest attempt's
/// summary; `GET /deliveries/{id}` adds the payload and every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub status: crate::DeliveryStatus,
    pub attempt_count: i32,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub last_response_time_ms: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// A test send (the sample event of its type), not an event the application published.
    #[serde(default)]
    pub test: bool,
}

/// One HTTP try (SPEC §8); bodies are cut at 10 KB with a visible marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    pub id: String,
    pub attempted_at: DateTime<Utc>,
    pub attempt_number: i32,
    pub status_code: Option<i32>,
    pub response_time_ms: i32,
    pub success: bool,
    pub error: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub request_headers: serde_json::Value,
    pub request_body: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub response_headers: Option<serde_json::Value>,
    pub response_body: Option<String>,
}

/// Filters of a delivery log (all optional); `cursor` is the `next_cursor` of the page before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams, utoipa::ToSchema))]
pub struct DeliveryFilter {
    pub status: Option<crate::DeliveryStatus>,
    pub event_type: Option<crate::EventType>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only the delivery of this event (`evt_…`), to find one event in a busy log.
    pub event_id: Option<String>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryPage {
    pub data: Vec<Delivery>,
    pub next_cursor: Option<String>,
    /// On the first page, when the endpoint has more deliveries due than its rate limit
    /// sends in a second: they wait their turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled: Option<Throttle>,
}

/// An endpoint's deliveries due now, more than its rate limit sends in a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Throttle {
    /// Deliveries due now, counted up to `Throttle::COUNT_CAP`.
    pub due: i64,
    /// The endpoint's limit, in deliveries per second.
    pub rate_limit: i32,
}

impl Throttle {
    /// Counting stops here: a log page should not scan a huge backlog to say it is huge.
    pub const COUNT_CAP: i64 = 10_000;

    /// `Some` when `due` is more than one second of sending at `rate_limit`.
    pub fn of(due: i64, rate_limit: i32) -> Option<Throttle> {
        (rate_limit > 0 && due > i64::from(rate_limit)).then_some(Throttle { due, rate_limit })
    }

    pub fn note(&self) -> String {
        let count =
            if self.due >= Self::COUNT_CAP { format!("over {}", Self::COUNT_CAP) } else { self.due.to_string() };
        let rate = i64::from(self.rate_limit.max(1));
        let secs = (self.due + rate - 1) / rate;
        format!(
            "Throttled: {count} deliveries are due and go out at the endpoint's rate limit of {}/s (about {secs} s).",
            self.rate_limit
        )
    }
}

impl Delivery {
    /// Why a pending delivery has not been sent yet, in one sentence: what holds its endpoint
    /// (`hold`: disabled, or the breaker), the retry it waits for, or the rate limit it waits
    /// behind. `None` when it is not pending or simply about to go.
    pub fn waiting_reason(
        &self,
        hold: Option<&str>,
        throttle: Option<&Throttle>,
        now: DateTime<Utc>,
        show: ShowTime,
    ) -> Option<String> {
        if self.status != crate::DeliveryStatus::Pending {
            return None;
        }
        if let Some(hold) = hold {
            return Some(hold.to_owned());
        }
        match self.next_attempt_at {
            Some(at) if self.attempt_count > 0 && at > now => {
                Some(format!("Waiting for retry {} at {}.", self.attempt_count, show(at, "%Y-%m-%d %H:%M:%S")))
            }
            _ => throttle.map(Throttle::note),
        }
    }
}

/// A bulk retry of an endpoint's failed deliveries in a time range (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkRetry {
    pub id: String,
    /// `retry`: failed deliveries sent again; `recover`: deliveries created for the events
    /// the endpoint never got (SPEC §8).
    pub kind: crate::BulkRetryKind,
    pub endpoint_id: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// The status resent (`failed` or `pending`; `retry` only).
    pub status: crate::DeliveryStatus,
    /// The event types resent; empty: every type (`retry` only).
    pub event_types: Vec<String>,
    /// Failed deliveries in the range (`retry`), or events missing from the endpoint
    /// (`recover`), when it started.
    pub total: i32,
    /// How many of them have been queued so far.
    pub done: i32,
    pub state: crate::BulkRetryState,
    /// When it was started; a bulk retry resends only what failed before.
    pub created_at: DateTime<Utc>,
}

/// `POST /api/v1/endpoints/{id}/recover`: send the endpoint the events since `since` (within
/// the log retention) that it subscribes to and has not received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoverRequest {
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkRetryRange {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Which deliveries to resend: `failed` (the default), or `pending` ones waiting for a
    /// retry, which are then sent now. Delivered ones are replayed one by one, not in bulk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeliveryStatus>,
    /// Only deliveries of these event types; empty: every type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<EventType>,
}

impl BulkRetryRange {
    /// A range of failed deliveries of every type, the filters left out.
    pub fn failed(since: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        BulkRetryRange { since, until, status: None, event_types: Vec::new() }
    }

    /// The status resent: `failed` unless another is named.
    pub fn target_status(&self) -> DeliveryStatus {
        self.status.unwrap_or(DeliveryStatus::Failed)
    }

    /// The event types as stored and compared: sorted, without repeats, comma-separated;
    /// empty for every type. The same filter in another order is the same bulk retry.
    pub fn event_types_key(&self) -> String {
        let mut names: Vec<&str> = self.event_types.iter().map(|t| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names.join(",")
    }
}

/// Attempts to one endpoint in one time bucket, for the dashboard's chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatBucket {
    pub start: DateTime<Utc>,
    pub total: i64,
    pub succeeded: i64,
    pub avg_ms: f64,
}

/// How a sentence shows a time, given a chrono format without the zone: the viewer's zone
/// in the dashboard (`app::time`), UTC in emails and tests (`utc`).
pub type ShowTime<'a> = &'a dyn Fn(DateTime<Utc>, &str) -> String;

/// `t` in UTC, the zone named.
pub fn utc(t: DateTime<Utc>, format: &str) -> String {
    format!("{} UTC", t.format(format))
}

impl Endpoint {
    /// Why this endpoint's pending deliveries are not being sent right now, if something
    /// holds them: the disable, or the circuit breaker until its next probe.
    pub fn hold_reason(&self) -> Option<String> {
        self.hold_reason_in(&utc)
    }

    pub fn hold_reason_in(&self, show: ShowTime) -> Option<String> {
        match self.status {
            EndpointStatus::Disabled => Some("Held: the endpoint is disabled.".to_owned()),
            EndpointStatus::Failing => self
                .health
                .next_attempt_at
                .map(|t| format!("Held by the circuit breaker until {}.", show(t, "%H:%M:%S"))),
            EndpointStatus::Healthy => None,
        }
    }

    /// One sentence that says why the endpoint is failing or disabled, since when, and what
    /// happens next, for the list and the endpoint page; `None` while it is healthy.
    pub fn health_note(&self) -> Option<String> {
        self.health_note_in(&utc)
    }

    pub fn health_note_in(&self, show: ShowTime) -> Option<String> {
        let h = &self.health;
        let at = |t: DateTime<Utc>| show(t, "%Y-%m-%d %H:%M");
        let since = at(h.status_since);
        let last = h.last_error.as_deref().map(|e| format!(" Last error: {e}.")).unwrap_or_default();
        match self.status {
            EndpointStatus::Healthy => None,
            EndpointStatus::Failing => {
                let next = h
                    .next_attempt_at
                    .map(|t| format!(" Deliveries are held until the next attempt at {}.", show(t, "%H:%M:%S")))
                    .unwrap_or_default();
                let since = at(h.failing_since.unwrap_or(h.status_since));
                Some(format!("Failing since {since}: {} failed attempts in a row.{last}{next}", h.consecutive_failures))
            }
            EndpointStatus::Disabled => {
                let reason = h.disabled_reason.as_deref().unwrap_or("Disabled.");
                Some(format!(
                    "Disabled since {since}. {reason}{last} New events are not queued for it until it is re-enabled."
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn pending(attempt_count: i32, next_attempt_at: Option<DateTime<Utc>>) -> Delivery {
        Delivery {
            id: "dlv_1".into(),
            event_id: "evt_1".into(),
            event_type: "task.created".into(),
            endpoint_id: "ep_1".into(),
            status: crate::DeliveryStatus::Pending,
            attempt_count,
            created_at: Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap(),
            next_attempt_at,
            last_attempt_at: None,
            last_status_code: None,
            last_error: None,
            last_response_time_ms: None,
            payload: None,
            attempts: Vec::new(),
            test: false,
        }
    }

    #[test]
    fn a_pending_delivery_says_what_it_waits_for_hold_first_then_its_retry_then_the_rate_limit() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap();
        let later = now + chrono::Duration::minutes(30);
        let throttle = Throttle::of(250, 100);
        assert_eq!(Throttle::of(100, 100), None, "one second of sending is not a wait");
        let first = pending(0, Some(now));
        assert_eq!(first.waiting_reason(None, None, now, &utc), None);
        assert_eq!(
            first.waiting_reason(None, throttle.as_ref(), now, &utc).as_deref(),
            Some("Throttled: 250 deliveries are due and go out at the endpoint's rate limit of 100/s (about 3 s).")
        );
        let retrying = pending(2, Some(later));
        assert_eq!(
            retrying.waiting_reason(None, throttle.as_ref(), now, &utc).as_deref(),
            Some("Waiting for retry 2 at 2026-11-30 10:30:00 UTC.")
        );
        assert_eq!(
            retrying.waiting_reason(Some("Held: the endpoint is disabled."), None, now, &utc).as_deref(),
            Some("Held: the endpoint is disabled.")
        );
        let delivered = Delivery { status: crate::DeliveryStatus::Delivered, ..pending(1, None) };
        assert_eq!(delivered.waiting_reason(Some("Held"), throttle.as_ref(), now, &utc), None);
        assert!(Throttle::of(Throttle::COUNT_CAP, 10).unwrap().note().starts_with("Throttled: over 10000 deliveries"));
    }

    #[test]
    fn a_bulk_retry_resends_failed_deliveries_unless_told_otherwise_and_its_type_filter_has_one_spelling() {
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
        let plain: BulkRetryRange =
            serde_json::from_str(r#"{"since":"2026-11-29T00:00:00Z","until":"2026-11-30T00:00:00Z"}"#).unwrap();
        assert_eq!(plain, BulkRetryRange::failed(t - chrono::Duration::days(1), t));
        assert_eq!(plain.target_status(), DeliveryStatus::Failed);
        assert_eq!(plain.event_types_key(), "");
        let filtered = BulkRetryRange {
            status: Some(DeliveryStatus::Pending),
            event_types: vec![EventType::TaskCreated, EventType::ProjectCreated, EventType::TaskCreated],
            ..plain
        };
        assert_eq!(filtered.target_status(), DeliveryStatus::Pending);
        assert_eq!(filtered.event_types_key(), "project.created,task.created");
    }

    fn endpoint(status: EndpointStatus, health: EndpointHealth) -> Endpoint {
        Endpoint {
            id: "ep_01hq3k5v8w9x2y3z4a5b6c7d8e".parse().unwrap(),
            url: "https://example.com/hooks".into(),
            description: String::new(),
            event_types: vec![],
            enabled: status != EndpointStatus::Disabled,
            status,
            rate_limit: 100,
            health,
            created_at: Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap(),
        }
    }

    fn health() -> EndpointHealth {
        EndpointHealth {
            consecutive_failures: 0,
            last_error: None,
            disabled_reason: None,
            failing_since: Some(Utc.with_ymd_and_hms(2026, 11, 30, 9, 15, 0).unwrap()),
            status_since: Utc.with_ymd_and_hms(2026, 11, 30, 9, 15, 0).unwrap(),
            next_attempt_at: None,
        }
    }

    #[test]
    fn a_healthy_endpoint_needs_no_note() {
        let h = EndpointHealth { last_error: Some("HTTP 500".into()), ..health() };
        assert_eq!(endpoint(EndpointStatus::Healthy, h).health_note(), None);
    }

    #[test]
    fn a_failing_endpoint_says_since_when_how_often_why_and_when_it_is_tried_again() {
        let h = EndpointHealth {
            consecutive_failures: 7,
            last_error: Some("HTTP 503".into()),
            next_attempt_at: Some(Utc.with_ymd_and_hms(2026, 11, 30, 9, 45, 30).unwrap()),
            ..health()
        };
        assert_eq!(
            endpoint(EndpointStatus::Failing, h).health_note().unwrap(),
            "Failing since 2026-11-30 09:15 UTC: 7 failed attempts in a row. Last error: HTTP 503. \
             Deliveries are held until the next attempt at 09:45:30 UTC."
        );
    }

    #[test]
    fn pending_deliveries_are_held_by_a_disable_or_an_open_breaker_and_nothing_else() {
        assert_eq!(endpoint(EndpointStatus::Healthy, health()).hold_reason(), None);
        assert_eq!(
            endpoint(EndpointStatus::Disabled, health()).hold_reason().as_deref(),
            Some("Held: the endpoint is disabled.")
        );
        let open = EndpointHealth {
            next_attempt_at: Some(Utc.with_ymd_and_hms(2026, 11, 30, 9, 45, 30).unwrap()),
            ..health()
        };
        assert_eq!(
            endpoint(EndpointStatus::Failing, open).hold_reason().as_deref(),
            Some("Held by the circuit breaker until 09:45:30 UTC.")
        );
        assert_eq!(endpoint(EndpointStatus::Failing, health()).hold_reason(), None, "breaker closed: sent as usual");
    }

    #[test]
    fn a_disabled_endpoint_gives_the_reason_it_was_disabled() {
        let h = EndpointHealth {
            disabled_reason: Some("The endpoint answered 410 Gone.".into()),
            last_error: Some("HTTP 410".into()),
            ..health()
        };
        let note = endpoint(EndpointStatus::Disabled, h).health_note().unwrap();
        assert!(note.starts_with("Disabled since 2026-11-30 09:15 UTC. The endpoint answered 410 Gone."), "{note}");
        assert!(note.contains("Last error: HTTP 410."), "{note}");
    }
}

/// One entry of the event catalogue (SPEC §11, `GET /api/v1/event-types`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventTypeInfo {
    pub name: crate::EventType,
    /// The picker's group: Project, Task, User or Billing.
    pub group: String,
    pub description: String,
    /// A whole payload as a receiver gets it.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub sample: serde_json::Value,
}

impl EventTypeInfo {
    pub fn of(t: crate::EventType) -> EventTypeInfo {
        EventTypeInfo {
            name: t,
            group: t.category().label().to_owned(),
            description: t.description().to_owned(),
            sample: crate::samples::sample_payload(t),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventTypeList {
    pub data: Vec<EventTypeInfo>,
}

/// An event with its deliveries across the account's endpoints (SPEC §11,
/// `GET /api/v1/events/{id}`). Each delivery carries its latest attempt's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventDetail {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    /// The payload bytes every endpoint was sent.
    pub payload: String,
    pub deliveries: Vec<Delivery>,
}

/// An account API key as the settings page lists it (SPEC §9): never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    pub id: String,
    /// The key's first characters (`whk_` and 8 more), to tell keys apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    /// Updated at most once a minute per key.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just created: the only time the whole key is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedApiKey {
    pub info: ApiKeyInfo,
    pub key: String,
}
