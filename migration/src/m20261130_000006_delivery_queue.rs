use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The slim queue (ENGINE.md, BENCHMARKS.md engine step 3): pending work moves out of the
/// delivery log into a table of its own.
/// - `delivery_queue` holds one row per pending delivery, keyed `(endpoint_id, delivery_id)`:
///   delivery ids are made in arrival order, so the key is the order an endpoint is served in.
///   A row is inserted with its delivery, its `due_at` moved when a retry is scheduled, and it
///   is deleted at the delivery's final outcome, so the table stays as small as the backlog.
/// - `deliveries` keeps the log and the state the dashboard shows, but no index reads its
///   status any more: the partial pending index and the status index go, so moving a delivery
///   to its final state is a HOT update (no index entry written), and `fillfactor` leaves room
///   on each page for it. The log's status filter reads the endpoint's log index newest first.
/// - `deliveries.lease_until` goes: leases are per endpoint since engine v1's dispatcher, and
///   nothing has read or written the column since.
/// - The queue is delete-heavy: autovacuum visits it after 1,000 dead rows, not 20 % of it.
const UP: &str = r#"
CREATE TABLE delivery_queue (
    endpoint_id text NOT NULL,
    delivery_id text NOT NULL,
    due_at      timestamptz NOT NULL,
    PRIMARY KEY (endpoint_id, delivery_id)
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_cost_delay = 0);
INSERT INTO delivery_queue (endpoint_id, delivery_id, due_at)
SELECT endpoint_id, id, COALESCE(next_attempt_at, now()) FROM deliveries WHERE status = 'pending';
DROP INDEX IF EXISTS deliveries_pending_endpoint_idx;
DROP INDEX IF EXISTS deliveries_endpoint_status_idx;
ALTER TABLE deliveries SET (fillfactor = 70);
ALTER TABLE deliveries DROP COLUMN IF EXISTS lease_until;
"#;

const DOWN: &str = r#"
ALTER TABLE deliveries RESET (fillfactor);
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS lease_until timestamptz;
CREATE INDEX IF NOT EXISTS deliveries_endpoint_status_idx ON deliveries (endpoint_id, status, created_at DESC);
CREATE INDEX IF NOT EXISTS deliveries_pending_endpoint_idx ON deliveries (endpoint_id, id) WHERE status = 'pending';
DROP TABLE IF EXISTS delivery_queue;
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
