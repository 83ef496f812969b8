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
    pub created_at: DateTime<Utc>,
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
    pub endpoint_id: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Failed deliveries in the range when it started.
    pub total: i32,
    /// How many of them have been queued for a new attempt so far.
    pub done: i32,
    /// `running` | `finished`
    pub state: String,
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
