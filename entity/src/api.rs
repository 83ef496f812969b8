//! Resource shapes shared by the REST API and the dashboard (SPEC §11).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{EndpointId, EndpointStatus, EventType};

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
}

/// A bulk retry of an endpoint's failed deliveries in a time range (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkRetry {
    pub id: String,
    /// `retry`: failed deliveries sent again; `recover`: deliveries created for the events
    /// the endpoint never got (SPEC §8).
    pub kind: String,
    pub endpoint_id: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Failed deliveries in the range (`retry`), or events missing from the endpoint
    /// (`recover`), when it started.
    pub total: i32,
    /// How many of them have been queued so far.
    pub done: i32,
    /// `running` | `finished`
    pub state: String,
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
