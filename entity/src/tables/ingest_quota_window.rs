use sea_orm::entity::prelude::*;

/// The shared half of the ingest quota (SPEC §10, `server/src/quota.rs`): for one account, the
/// second being counted and how many events all processes have reserved in it. One row per
/// account, updated in place. The hot path writes it with one upsert statement of its own;
/// this entity is for reading it (tests, the dashboard, an operator's query).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ingest_quota_windows")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: crate::ids::AccountId,
    /// Unix seconds of the window.
    pub second: i64,
    /// Events reserved in that second, by every process together.
    pub used: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!();
