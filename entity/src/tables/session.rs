use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    /// SHA-256 (hex) of the cookie token: a database leak does not leak live sessions.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub user_id: crate::ids::UserId,
    pub account_id: crate::ids::AccountId,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
