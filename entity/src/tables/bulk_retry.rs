use sea_orm::entity::prelude::*;

/// A bulk retry or a recovery of one endpoint (SPEC §8) and its progress; the job that does
/// the work reads its row by id.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bulk_retries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: crate::ids::BulkRetryId,
    /// `retry`: failed deliveries sent again; `recover`: deliveries created for the events
    /// the endpoint never got.
    pub kind: crate::BulkRetryKind,
    pub account_id: crate::ids::AccountId,
    pub endpoint_id: crate::ids::EndpointId,
    pub since: DateTimeUtc,
    pub until: DateTimeUtc,
    /// The delivery status resent, `failed` or `pending` (`retry` only; `failed` otherwise).
    pub status: crate::DeliveryStatus,
    /// The event types resent, comma-separated; empty: every type (`retry` only).
    pub event_types: String,
    pub total: i32,
    pub done: i32,
    pub state: crate::BulkRetryState,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!();
