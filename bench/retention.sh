#!/usr/bin/env bash
# What the attempt log's retention costs PostgreSQL, by row deletes (the retention before
# day partitions) and by dropping a day's partition, and what the partitions cost the hot
# path's insert. On a scratch database with the real schema (`webhooks migrate`), one day of
# attempts shaped like the bench's (the headers as sent, a small answer):
#   1. ROWS attempts inserted, 1,000 to a statement, into a plain table with the log's three
#      indexes and into the partitioned `attempts` (one day partition), alternately twice;
#   2. the plain table's rows deleted by the statement retention used before (5,000 rows
#      each, by ctid), then the VACUUM that makes their space usable again;
#   3. the day's partition dropped;
#   4. a day of events (into their day's partition: ids of that day) and of deliveries
#      inserted; the deliveries (still deleted by rows) deleted by retention's statement and
#      vacuumed; then the events' day dropped as retention drops it, after checking that no
#      delivery of the day is left.
# Prints PostgreSQL's time (wall clock of each step; nothing else runs) and WAL bytes, in all
# and per row.
#
#   bench/retention.sh [ROWS]     # default 1000000; build first: cargo build --release -p server
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
ROWS="${1:-1000000}"
BINARY="$ROOT/target/release/webhooks"
[ -x "$BINARY" ] || { log "build first: cargo build --release -p server"; exit 1; }
provision_postgres
DB="webhooks_retention_$$"
URL="${PG_ADMIN_URL%/*}/$DB"
psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE $DB"
trap 'psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
DATABASE_URL="$URL" "$BINARY" migrate >/dev/null 2>&1

sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$URL" -c "$1"; }
# The day after tomorrow: a day partition the migration made and nothing else writes to.
DAY="$(sql "SELECT to_char(date_trunc('day', now(), 'UTC') + interval '2 days', 'YYYY-MM-DD')")"
PART="attempts_p${DAY//-/}"
sql "CREATE TABLE attempts_flat (LIKE attempts INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE);
     CREATE INDEX ON attempts_flat (delivery_id, attempt_number);
     CREATE INDEX ON attempts_flat (endpoint_id, attempted_at DESC);
     CREATE INDEX ON attempts_flat USING brin (attempted_at);"

source "$(dirname "${BASH_SOURCE[0]}")/measure.sh"

# ROWS rows of table $1 from the SELECT list $2 over g, 1,000 to a statement, committed as they go.
insert_rows() {
  cat <<SQL
DO \$\$
BEGIN
  FOR b IN 0..($ROWS - 1) / 1000 LOOP
    INSERT INTO $1 SELECT $2 FROM generate_series(b * 1000, least(b * 1000 + 999, $ROWS - 1)) g;
    COMMIT;
  END LOOP;
END \$\$;
SQL
}
# The delete $1 (5,000 rows each) again until it deletes fewer, committed as it goes.
in_batches() {
  cat <<SQL
DO \$\$
DECLARE n bigint;
BEGIN
  LOOP
    $1;
    GET DIAGNOSTICS n = ROW_COUNT;
    COMMIT;
    EXIT WHEN n < 5000;
  END LOOP;
END \$\$;
SQL
}
# Row g's time in the day, and the end of the day.
AT="'$DAY'::timestamptz + g * (interval '86399 seconds' / $ROWS)"
CUTOFF="'$DAY'::timestamptz + interval '1 day'"

# A day of attempts into table $1, shaped like the bench's.
insert_day() {
  insert_rows "$1 (id, account_id, delivery_id, endpoint_id, event_type, attempt_number, attempted_at,
                   status_code, response_time_ms, success, sent_headers, response_headers, response_body)" \
    "'att_' || lpad(g::text, 26, '0'), 'acc_' || lpad((g % 200)::text, 26, '0'),
     'dlv_' || lpad(g::text, 26, '0'), 'ep_' || lpad((g % 200)::text, 26, '0'), 'task.completed', 1, $AT, 200, 3, true,
     'content-type: application/json' || chr(10) || 'user-agent: webhooks/0.1' || chr(10)
       || 'webhook-id: evt_' || lpad(g::text, 26, '0') || chr(10) || 'webhook-timestamp: 1765100000' || chr(10)
       || 'webhook-signature: v1,' || md5(g::text) || 'AbCdEfGhIjKl=' || chr(10)
       || 'x-webhook-signature: t=1765100000,v1=' || md5(g::text) || md5((g + 1)::text) || chr(10)
       || 'content-length: 182',
     '{\"content-length\": \"0\", \"date\": \"Mon, 07 Dec 2026 11:00:00 GMT\"}', ''"
}

log "one day of $ROWS attempts, inserted into a plain table and into the day partitions, twice each"
# Each insert starts after a checkpoint; the second round takes the two in the other order.
insert_plain() { sql "CHECKPOINT"; measure "insert, plain table (round $1)" "$(insert_day attempts_flat)"; }
insert_parted() { sql "CHECKPOINT"; measure "insert, day partitions (round $1)" "$(insert_day attempts)"; }
insert_plain 1
insert_parted 1
sql "TRUNCATE attempts_flat; TRUNCATE $PART"
insert_parted 2
insert_plain 2
sql "CHECKPOINT"
log "removing the day: row deletes as retention did, and the VACUUM they need; dropping the partition"
measure "delete, 5,000 rows a statement" "$(in_batches "DELETE FROM attempts_flat WHERE ctid = ANY(ARRAY(
  SELECT ctid FROM attempts_flat WHERE attempted_at < $CUTOFF LIMIT 5000))")"
measure "vacuum after the deletes" "VACUUM attempts_flat"
measure "drop the day's partition" "DROP TABLE $PART"

log "events and deliveries: a day of each inserted; deliveries deleted by rows as retention does, vacuumed; the events' day dropped"
# An event id in DAY, unique by g: the day's lowest id (the migration's bound function, an
# immutable call on a constant, so evaluated once) with g in place of its random bits.
EVT="left(event_day_bound('$DAY'), 14) || lpad(g::text, 16, '0')"
sql "CHECKPOINT"
measure "insert events" "$(insert_rows "events (id, account_id, event_type, payload, created_at)" \
  "$EVT, 'acc_' || lpad((g % 200)::text, 26, '0'), 'task.completed',
   '{\"id\":\"' || $EVT || '\",\"type\":\"task.completed\",\"created\":\"2026-12-07T11:00:00Z\",\"data\":{\"object\":{\"id\":\"obj_' || g || '\"}},\"account_id\":\"acc_' || lpad((g % 200)::text, 26, '0') || '\"}', $AT")"
measure "insert deliveries" "$(insert_rows "deliveries (id, account_id, event_id, endpoint_id, event_type, status, attempt_count, created_at, updated_at)" \
  "'dlv_' || lpad(g::text, 26, '0'), 'acc_' || lpad((g % 200)::text, 26, '0'), $EVT,
   'ep_' || lpad((g % 200)::text, 26, '0'), 'task.completed', 'delivered', 1, $AT, $AT")"
sql "CHECKPOINT"
measure "delete deliveries, as retention does" "$(in_batches "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries
  WHERE status <> 'pending' AND created_at < $CUTOFF AND updated_at < $CUTOFF LIMIT 5000)")"
measure "vacuum deliveries" "VACUUM deliveries"
measure "drop the events' day, as retention does" "DO \$\$ BEGIN
  IF EXISTS (SELECT 1 FROM deliveries WHERE event_id >= event_day_bound('$DAY')
             AND event_id < event_day_bound('$DAY'::timestamptz + interval '1 day')) THEN
    RAISE EXCEPTION 'deliveries of the day are left';
  END IF;
  DROP TABLE events_p${DAY//-/};
END \$\$"
