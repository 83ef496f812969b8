use sea_orm::entity::prelude::*;

/// One per (event, subscribed endpoint): the delivery log and the state the dashboard shows.
/// While it is pending, its work item is a `delivery_queue` row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: crate::ids::DeliveryId,
    pub account_id: crate::ids::AccountId,
    pub event_id: crate::ids::EventId,
    pub endpoint_id: crate::ids::EndpointId,
    pub event_type: String,
    pub status: crate::DeliveryStatus,
    pub attempt_count: i32,
    /// `attempt_count` when the current attempt budget began: a manual or bulk retry starts
    /// a fresh one (SPEC §8).
    pub budget_from: i32,
    /// When the next attempt is due; null once delivered or dead-lettered.
    pub next_attempt_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// A test send from the dashboard or `POST /endpoints/{id}/test`, logged as sent.
    pub test: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!();
