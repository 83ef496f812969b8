use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The columns the delivery engine needs on endpoints: a lease so exactly one worker
/// sends to an endpoint at a time (order and rate limit hold across processes), and the
/// circuit breaker's next probe time.
const UP: &str = r#"
ALTER TABLE endpoints
    ADD COLUMN lease_until   timestamptz,
    ADD COLUMN lease_owner   text,
    ADD COLUMN breaker_until timestamptz,
    ADD COLUMN last_error    text;
-- Endpoints with due work, for the claim query.
CREATE INDEX deliveries_pending_endpoint_idx ON deliveries (endpoint_id, id) WHERE status = 'pending';
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS deliveries_pending_endpoint_idx;
ALTER TABLE endpoints DROP COLUMN lease_until, DROP COLUMN lease_owner, DROP COLUMN breaker_until,
    DROP COLUMN last_error;
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
