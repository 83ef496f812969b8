use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The attempt log by day (issue 11, ARCHITECTURE.md "Data model"): `attempts` becomes a table
/// partitioned by `attempted_at`, one partition per UTC day (`attempts_pYYYYMMDD`), so
/// retention drops a day instead of deleting its rows (`server/src/log_partitions.rs`).
/// - The existing table, without today's rows, is attached whole as `attempts_before`
///   (everything before today): no copy of the log, only one read of it to prove the range.
///   Today's rows move into today's partition.
/// - `attempts_default` takes what falls past the days made ahead; the server makes the next
///   days at every start and in every housekeeping run, so it stays empty.
/// - The parent's indexes are the same three; the old table's indexes are attached as its
///   partition's, not built again.
const UP: &str = r#"
ALTER TABLE attempts RENAME TO attempts_before;
ALTER INDEX attempts_delivery_idx RENAME TO attempts_before_delivery_idx;
ALTER INDEX attempts_endpoint_time_idx RENAME TO attempts_before_endpoint_time_idx;
ALTER INDEX attempts_attempted_at_brin RENAME TO attempts_before_attempted_at_brin;
CREATE TABLE attempts (LIKE attempts_before INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)
    PARTITION BY RANGE (attempted_at);
CREATE INDEX attempts_delivery_idx ON attempts (delivery_id, attempt_number);
CREATE INDEX attempts_endpoint_time_idx ON attempts (endpoint_id, attempted_at DESC);
CREATE INDEX attempts_attempted_at_brin ON attempts USING brin (attempted_at);
CREATE TABLE attempts_default PARTITION OF attempts DEFAULT;
DO $$
DECLARE
    today timestamptz := date_trunc('day', now(), 'UTC');
    day timestamptz;
BEGIN
    -- Today and two days ahead, as `log_partitions::AHEAD_DAYS`.
    FOR i IN 0..2 LOOP
        day := today + make_interval(days => i);
        EXECUTE format('CREATE TABLE %I PARTITION OF attempts FOR VALUES FROM (%L) TO (%L)',
                       'attempts_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD'), day, day + interval '1 day');
    END LOOP;
    WITH moved AS (DELETE FROM attempts_before WHERE attempted_at >= today RETURNING *)
    INSERT INTO attempts SELECT * FROM moved;
    -- With this constraint in place, attaching does not read the table again.
    EXECUTE format('ALTER TABLE attempts_before ADD CONSTRAINT attempts_before_range CHECK (attempted_at < %L)', today);
    EXECUTE format('ALTER TABLE attempts ATTACH PARTITION attempts_before FOR VALUES FROM (MINVALUE) TO (%L)', today);
    ALTER TABLE attempts_before DROP CONSTRAINT attempts_before_range;
END $$;
"#;

const DOWN: &str = r#"
CREATE TABLE attempts_flat (LIKE attempts INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE);
INSERT INTO attempts_flat SELECT * FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_flat RENAME TO attempts;
CREATE INDEX attempts_delivery_idx ON attempts (delivery_id, attempt_number);
CREATE INDEX attempts_endpoint_time_idx ON attempts (endpoint_id, attempted_at DESC);
CREATE INDEX attempts_attempted_at_brin ON attempts USING brin (attempted_at);
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
