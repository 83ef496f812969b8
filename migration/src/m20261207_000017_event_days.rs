use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Events by day (issue 11, ARCHITECTURE.md "Data model"), as the attempts are since 000016:
/// retention drops a day of events instead of deleting them row by row, which cost ~4.5 µs
/// and ~420 B of WAL per event (`bench/retention.sh`).
/// - The key must stay unique (ingest's `ON CONFLICT (id)` rests on it), so the partition key
///   is the id itself, by range: ids are time-ordered UUIDv7s, and a UTC day's events are the
///   ids from the lowest id of its first millisecond to the lowest of the next day's
///   (`entity::ids::lowest_at`; `event_day_bound` below is the same in SQL). Partitions are
///   named `events_pYYYYMMDD`, like the attempts'.
/// - The existing table, without the rows of today on, is attached whole as `events_before`:
///   no copy, one read to prove the range. `events_default` takes what falls past the days
///   made ahead, among them a client-supplied id that says a time far ahead.
/// - The parent's indexes are the old two (the key and the BRIN on `created_at`); the old
///   table's are attached as its partition's, not built again.
const UP: &str = r#"
CREATE FUNCTION event_day_bound(day timestamptz) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    ms bigint := (extract(epoch FROM day) * 1000)::bigint;
    digits text := '';
BEGIN
    FOR i IN REVERSE 9..0 LOOP
        digits := digits || substr('0123456789abcdefghjkmnpqrstvwxyz', ((ms >> (5 * i)) & 31)::int + 1, 1);
    END LOOP;
    RETURN 'evt_' || digits || repeat('0', 16);
END $$;

ALTER TABLE events RENAME TO events_before;
ALTER INDEX events_pkey RENAME TO events_before_pkey;
ALTER INDEX events_created_brin RENAME TO events_before_created_brin;
CREATE TABLE events (LIKE events_before INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)
    PARTITION BY RANGE (id);
ALTER TABLE events ADD PRIMARY KEY (id);
CREATE INDEX events_created_brin ON events USING brin (created_at);
CREATE TABLE events_default PARTITION OF events DEFAULT;
DO $$
DECLARE
    today timestamptz := date_trunc('day', now(), 'UTC');
    day timestamptz;
BEGIN
    -- Today and two days ahead, as `log_partitions::AHEAD_DAYS`.
    FOR i IN 0..2 LOOP
        day := today + make_interval(days => i);
        EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                       'events_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD'),
                       event_day_bound(day), event_day_bound(day + interval '1 day'));
    END LOOP;
    WITH moved AS (DELETE FROM events_before WHERE id >= event_day_bound(today) RETURNING *)
    INSERT INTO events SELECT * FROM moved;
    -- With this constraint in place, attaching does not read the table again.
    EXECUTE format('ALTER TABLE events_before ADD CONSTRAINT events_before_range CHECK (id < %L)',
                   event_day_bound(today));
    EXECUTE format('ALTER TABLE events ATTACH PARTITION events_before FOR VALUES FROM (MINVALUE) TO (%L)',
                   event_day_bound(today));
    ALTER TABLE events_before DROP CONSTRAINT events_before_range;
END $$;
"#;

const DOWN: &str = r#"
CREATE TABLE events_flat (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE);
INSERT INTO events_flat SELECT * FROM events;
DROP TABLE events;
ALTER TABLE events_flat RENAME TO events;
ALTER TABLE events ADD PRIMARY KEY (id);
CREATE INDEX events_created_brin ON events USING brin (created_at);
DROP FUNCTION event_day_bound(timestamptz);
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
