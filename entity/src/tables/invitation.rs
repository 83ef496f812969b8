use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invitations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: crate::ids::InvitationId,
    pub account_id: crate::ids::AccountId,
    /// Stored lowercased, like `users.email`.
    pub email: String,
    /// The role the new user gets.
    pub role: crate::Role,
    /// SHA-256 (hex) of the link's token; the token itself is only in the email.
    #[sea_orm(unique)]
    pub token_hash: String,
    /// The user who sent it; `None` once that user is removed.
    pub invited_by: Option<crate::ids::UserId>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub accepted_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!();
