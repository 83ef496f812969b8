//! The shared vocabulary (ids, event types, roles, statuses) and, behind feature `orm`,
//! the sea-orm entities. Everything outside `orm` compiles to wasm so the browser
//! validates with the same rules as the server.
#![forbid(unsafe_code)]

/// The sqlx side of a type stored as a text column, for the engine's hand-written statements:
/// it is typed as text, and decoded from the text by `$from` (`fn(&str) -> Result<Self, E>`).
/// A macro so ids and enums share one definition; it is defined before the modules that use
/// it, as `macro_rules!` scoping requires.
macro_rules! sqlx_text {
    ($name:ident, $from:expr) => {
        #[cfg(feature = "orm")]
        impl sea_orm::sqlx::Type<sea_orm::sqlx::Postgres> for $name {
            fn type_info() -> sea_orm::sqlx::postgres::PgTypeInfo {
                <&str as sea_orm::sqlx::Type<sea_orm::sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sea_orm::sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sea_orm::sqlx::Type<sea_orm::sqlx::Postgres>>::compatible(ty)
            }
        }

        #[cfg(feature = "orm")]
        impl<'r> sea_orm::sqlx::Decode<'r, sea_orm::sqlx::Postgres> for $name {
            fn decode(
                value: sea_orm::sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sea_orm::sqlx::error::BoxDynError> {
                let text = <&str as sea_orm::sqlx::Decode<sea_orm::sqlx::Postgres>>::decode(value)?;
                Ok($from(text)?)
            }
        }
    };
}

pub mod api;
pub mod body;
pub mod endpoint_input;
pub mod endpoint_url;
pub mod event_type;
pub mod header_lines;
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
