use sea_orm::entity::prelude::*;

/// One row per HTTP try (SPEC §8); bodies truncated to 10 KB.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: crate::ids::AttemptId,
    pub account_id: crate::ids::AccountId,
    pub delivery_id: crate::ids::DeliveryId,
    pub endpoint_id: crate::ids::EndpointId,
    pub event_type: String,
    pub attempt_number: i32,
    pub attempted_at: DateTimeUtc,
    pub status_code: Option<i32>,
    pub response_time_ms: i32,
    pub success: bool,
    pub error: Option<String>,
    /// The headers sent, as a JSON object: rows written before `sent_headers` existed.
    pub request_headers: Option<Json>,
    /// The headers sent, one `name: value` a line (`header_lines`); NULL in older rows.
    pub sent_headers: Option<String>,
    /// NULL: the event's payload, which is what the engine sends (shown cut at 10 KB).
    pub request_body: Option<String>,
    pub response_headers: Option<Json>,
    pub response_body: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!();
