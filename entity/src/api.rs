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
