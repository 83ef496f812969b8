use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Bulk retry takes a status (`failed`, or `pending` deliveries waiting for a retry) and an
/// event-type filter (issue 12). `event_types` is the sorted, comma-separated list, empty for
/// every type, so the same filter is one key and the running-retry index stays on plain
/// columns: the same range with other filters is another bulk retry.
const UP: &str = r#"
ALTER TABLE bulk_retries
    ADD COLUMN status text NOT NULL DEFAULT 'failed' CHECK (status IN ('failed', 'pending')),
    ADD COLUMN event_types text NOT NULL DEFAULT '';
DROP INDEX IF EXISTS bulk_retries_running_idx;
CREATE UNIQUE INDEX bulk_retries_running_idx ON bulk_retries (endpoint_id, since, until, status, event_types)
    WHERE state = 'running' AND kind = 'retry';
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS bulk_retries_running_idx;
DELETE FROM bulk_retries WHERE status <> 'failed' OR event_types <> '';
CREATE UNIQUE INDEX bulk_retries_running_idx ON bulk_retries (endpoint_id, since, until)
    WHERE state = 'running' AND kind = 'retry';
ALTER TABLE bulk_retries DROP COLUMN status, DROP COLUMN event_types;
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
