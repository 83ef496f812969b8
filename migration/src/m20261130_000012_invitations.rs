use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Owners and admins invite people by email (SPEC §9, issue 12 item 6). Only the token's
/// hash is kept, like sessions and API keys. At most one pending invitation per email and
/// account (the partial unique index), so a second invite cannot race the first; an accepted
/// or revoked one stays as a record.
const UP: &str = r#"
CREATE TABLE invitations (
    id           text PRIMARY KEY,
    account_id   text NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    email        text NOT NULL CHECK (email = lower(email)),
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    token_hash   text NOT NULL UNIQUE,
    invited_by   text REFERENCES users(id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX invitations_account_idx ON invitations (account_id, created_at);
CREATE UNIQUE INDEX invitations_one_pending_idx ON invitations (account_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
"#;

const DOWN: &str = "DROP TABLE invitations;";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_sql(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_sql(manager, DOWN).await
    }
}
