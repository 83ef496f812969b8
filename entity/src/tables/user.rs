use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: crate::ids::UserId,
    pub account_id: crate::ids::AccountId,
    /// Stored lowercased; unique across the platform so login needs no account name.
    pub email: String,
    /// PHC string (argon2id).
    pub password_hash: String,
    /// `owner` | `admin` | `member`, see `crate::Role`.
    pub role: crate::Role,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!();
