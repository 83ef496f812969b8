use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// What every event, delivery and attempt writes on the hot path, made smaller
/// (BENCHMARKS.md, engine step 2):
/// - The time indexes only retention reads (`retention.rs`: rows older than the cut-off, 5,000
///   at a time) become BRIN: rows arrive in time order, so a block-range summary finds them as
///   well as a btree does, and inserting into it costs almost nothing.
/// - The delivery log (events, deliveries, attempts) loses its foreign keys. Each one cost, per
///   row inserted, an index probe and a row lock on the parent (a WAL record and a dirtied
///   page): seven per delivery. What they guarded is kept by the code: ids come from the rows
///   the same statement inserts or from a leased endpoint; deleting an endpoint deletes its
///   deliveries and attempts in the same transaction (`app/src/server/endpoints.rs`); retention
///   deletes attempts, then deliveries without attempts, then events without deliveries.
///   Accounts are never deleted.
/// - `deliveries_due_idx` goes: the claim and fetch read `deliveries_pending_endpoint_idx`,
///   and the metrics gauges, read at scrape time, can too.
const UP: &str = r#"
DROP INDEX IF EXISTS events_created_idx;
DROP INDEX IF EXISTS deliveries_created_idx;
DROP INDEX IF EXISTS attempts_attempted_at_idx;
CREATE INDEX events_created_brin ON events USING brin (created_at);
CREATE INDEX deliveries_created_brin ON deliveries USING brin (created_at);
CREATE INDEX attempts_attempted_at_brin ON attempts USING brin (attempted_at);
DROP INDEX IF EXISTS deliveries_due_idx;
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_account_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_account_id_fkey,
    DROP CONSTRAINT IF EXISTS deliveries_event_id_fkey,
    DROP CONSTRAINT IF EXISTS deliveries_endpoint_id_fkey;
ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_account_id_fkey,
    DROP CONSTRAINT IF EXISTS attempts_delivery_id_fkey,
    DROP CONSTRAINT IF EXISTS attempts_endpoint_id_fkey;
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS events_created_brin;
DROP INDEX IF EXISTS deliveries_created_brin;
DROP INDEX IF EXISTS attempts_attempted_at_brin;
CREATE INDEX events_created_idx ON events (created_at);
CREATE INDEX deliveries_created_idx ON deliveries (created_at);
CREATE INDEX attempts_attempted_at_idx ON attempts (attempted_at);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status = 'pending';
ALTER TABLE events ADD FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE deliveries ADD FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE,
    ADD FOREIGN KEY (event_id) REFERENCES events(id) ON DELETE CASCADE,
    ADD FOREIGN KEY (endpoint_id) REFERENCES endpoints(id) ON DELETE CASCADE;
ALTER TABLE attempts ADD FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE,
    ADD FOREIGN KEY (delivery_id) REFERENCES deliveries(id) ON DELETE CASCADE,
    ADD FOREIGN KEY (endpoint_id) REFERENCES endpoints(id) ON DELETE CASCADE;
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
