//! The shared vocabulary (ids, event types, roles, statuses) and, behind feature `orm`,
//! the sea-orm entities. Everything outside `orm` compiles to wasm so the browser
//! validates with the same rules as the server.
#![forbid(unsafe_code)]

pub mod api;
pub mod body;
pub mod endpoint_input;
pub mod endpoint_url;
pub mod event_type;
pub mod ids;
pub mod paths;
pub mod samples;
pub mod session;
pub mod status;
pub mod team;

#[cfg(feature = "orm")]
pub mod tables;

pub use event_type::{EventCategory, EventType};
pub use ids::*;
pub use status::{BulkRetryKind, BulkRetryState, DeliveryStatus, EndpointStatus, Role};
