use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: crate::ids::ApiKeyId,
    pub account_id: crate::ids::AccountId,
    /// SHA-256 (hex) of the whole key; the key itself is shown once and never stored.
    #[sea_orm(unique)]
    pub key_hash: String,
    /// The first characters of the key, to tell keys apart in a list.
    pub key_prefix: String,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!();
