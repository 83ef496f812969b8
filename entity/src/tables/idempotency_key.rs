use sea_orm::entity::prelude::*;

/// Remembers the answer to an ingest request so its retry returns the same ids (SPEC §6).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: crate::ids::AccountId,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub event_ids: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!();
