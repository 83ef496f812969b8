use sea_orm::entity::prelude::*;

/// One row per (endpoint, subscribed event type); fan-out reads it by event type.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "endpoint_event_types")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub endpoint_id: crate::ids::EndpointId,
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_type: String,
    pub account_id: crate::ids::AccountId,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!();
