//! Resource shapes shared by the REST API and the dashboard (SPEC §11).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{EndpointId, EndpointStatus, EventType};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: EndpointId,
    pub url: String,
    pub description: String,
    pub event_types: Vec<EventType>,
    pub enabled: bool,
    pub status: EndpointStatus,
    pub rate_limit: i32,
    pub created_at: DateTime<Utc>,
}
