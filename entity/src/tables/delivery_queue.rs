use sea_orm::entity::prelude::*;

/// The delivery engine's work: one row per pending delivery, deleted at its final outcome.
/// The key is the order an endpoint is served in (delivery ids are made in arrival order).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "delivery_queue")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub endpoint_id: crate::ids::EndpointId,
    #[sea_orm(primary_key, auto_increment = false)]
    pub delivery_id: crate::ids::DeliveryId,
    /// When the next attempt is due: the delivery's creation, or its scheduled retry.
    pub due_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
