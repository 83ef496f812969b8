use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Recovery (SPEC §8, §11 `POST /endpoints/{id}/recover`) runs like a bulk retry: a row with
/// its progress, an apalis job. `kind` tells them apart. A bulk retry stays unique per range
/// while it runs; a recovery per endpoint (a second request returns the running one).
const UP: &str = r#"
ALTER TABLE bulk_retries ADD COLUMN kind text NOT NULL DEFAULT 'retry' CHECK (kind IN ('retry', 'recover'));
DROP INDEX IF EXISTS bulk_retries_running_idx;
CREATE UNIQUE INDEX bulk_retries_running_idx ON bulk_retries (endpoint_id, since, until)
    WHERE state = 'running' AND kind = 'retry';
CREATE UNIQUE INDEX bulk_retries_recovering_idx ON bulk_retries (endpoint_id)
    WHERE state = 'running' AND kind = 'recover';
"#;

const DOWN: &str = r#"
DELETE FROM bulk_retries WHERE kind = 'recover';
DROP INDEX IF EXISTS bulk_retries_recovering_idx;
DROP INDEX IF EXISTS bulk_retries_running_idx;
CREATE UNIQUE INDEX bulk_retries_running_idx ON bulk_retries (endpoint_id, since, until) WHERE state = 'running';
ALTER TABLE bulk_retries DROP COLUMN kind;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_sql(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_sql(manager, DOWN).await
    }
}
