use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Bulk retries (SPEC §8): one row per request, its progress, and a partial unique index so
/// starting the same bulk retry again while it runs returns the running one.
const UP: &str = r#"
CREATE TABLE bulk_retries (
    id          text PRIMARY KEY,
    account_id  text NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    endpoint_id text NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    since       timestamptz NOT NULL,
    until       timestamptz NOT NULL,
    total       integer NOT NULL,
    done        integer NOT NULL DEFAULT 0,
    state       text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'finished')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE UNIQUE INDEX bulk_retries_running_idx ON bulk_retries (endpoint_id, since, until) WHERE state = 'running';
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_sql(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_sql(manager, "DROP TABLE IF EXISTS bulk_retries").await
    }
}
