#!/usr/bin/env bash
# What day partitions of `events` would cost the hot path, against what they would save
# retention (bench/retention.sh, step 4: deleting an event by rows and vacuuming after costs
# ~4.5 µs and ~420 B of WAL). On a scratch database with the real schema (`webhooks migrate`):
#   1. a day of ROWS events inserted, 1,000 to a statement, into `events` (one table) and into
#      a copy partitioned by id range, one partition per day for DAYS days plus the two
#      catch-alls (as `attempts` is), order alternated over two rounds; then ROWS events
#      spread over all the days into both, for the reads;
#   2. the delivery fetch's read (the queue, its deliveries and their events' payloads, one
#      endpoint at a time, in event order) run by pgbench for 20 s against each, at 50 and at
#      200 deliveries per endpoint, for a queue of the last day's events (the steady state)
#      and for a backlog spread over every day: a partitioned `events` is pruned row by row
#      at run time, and every execution opens every partition; and, for the last day's
#      queue, the join into that day's partition named directly, as a server that reads
#      each day's payloads apart would.
# Ids are `evt_` + the day + a sequence, so the days' bounds are ids as in production, where
# ids are time-ordered.
#
#   bench/event_days.sh [ROWS] [DAYS]     # defaults 1000000 and 31; build first
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
ROWS="${1:-1000000}"
DAYS="${2:-31}"
# The last day's queue gives each of its events at most one delivery per endpoint.
[ $((ROWS / DAYS)) -ge 1000 ] || { echo "ROWS must be at least 1,000 × DAYS ($((1000 * DAYS)))" >&2; exit 1; }
BINARY="$ROOT/target/release/webhooks"
[ -x "$BINARY" ] || { log "build first: cargo build --release -p server"; exit 1; }
command -v pgbench >/dev/null || apt_install postgresql-contrib
provision_postgres
DB="webhooks_event_days_$$"
URL="${PG_ADMIN_URL%/*}/$DB"
WORK="$(mktemp -d /tmp/webhooks-event-days.XXXX)"
psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE $DB"
trap 'psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"; rm -rf "$WORK"' EXIT
DATABASE_URL="$URL" "$BINARY" migrate >/dev/null 2>&1

sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$URL" -c "$1"; }
day_id() { printf "evt_%04d" "$1"; }
# Since migration 000017 `events` is itself partitioned by day; the comparison's one table
# is `events` as it was before (its key and BRIN, as the migration's DOWN makes it).
sql "CREATE TABLE events_flat (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE);
     DROP TABLE events; ALTER TABLE events_flat RENAME TO events; ALTER TABLE events ADD PRIMARY KEY (id);
     CREATE INDEX events_created_brin ON events USING brin (created_at);"
# The partitioned copy: `events_before`, DAYS days, `events_default`, and the indexes `events`
# has (its key and a BRIN on `created_at`).
parts="CREATE TABLE events_days (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)
         PARTITION BY RANGE (id);
       ALTER TABLE events_days ADD PRIMARY KEY (id);
       CREATE INDEX ON events_days USING brin (created_at);
       CREATE TABLE events_days_before PARTITION OF events_days FOR VALUES FROM (MINVALUE) TO ('$(day_id 1)');
       CREATE TABLE events_days_default PARTITION OF events_days DEFAULT;"
for day in $(seq 1 "$DAYS"); do
  parts+="CREATE TABLE events_days_p$day PARTITION OF events_days FOR VALUES FROM ('$(day_id "$day")') TO ('$(day_id $((day + 1)))');"
done
sql "$parts"

source "$(dirname "${BASH_SOURCE[0]}")/measure.sh"
# Row g of the spread data: its day (1..DAYS, the rows spread evenly, in order) and its id.
SPREAD="'evt_' || lpad((1 + g * $DAYS / $ROWS)::text, 4, '0') || lpad(g::text, 22, '0')"
# Row g of one day's inserts: all in the last day, as the hot path inserts only into today's.
LAST_DAY="'evt_' || lpad('$DAYS', 4, '0') || lpad(g::text, 22, '0')"
ID="$SPREAD"
# ROWS events with ids $2 into table $1, 1,000 to a statement, committed as they go.
insert_events() {
  cat <<SQL
DO \$\$
BEGIN
  FOR b IN 0..($ROWS - 1) / 1000 LOOP
    INSERT INTO $1 (id, account_id, event_type, payload, created_at)
    SELECT $2, 'acc_' || lpad((g % 200)::text, 26, '0'), 'task.completed',
           '{"id":"' || $2 || '","type":"task.completed","created":"2026-12-07T11:00:00Z","data":{"object":{"id":"obj_' || g || '"}}}',
           now()
    FROM generate_series(b * 1000, least(b * 1000 + 999, $ROWS - 1)) g;
    COMMIT;
  END LOOP;
END \$\$;
SQL
}

log "a day of $ROWS events, into one table and into its day's partition, twice each"
flat() { sql "CHECKPOINT"; measure "insert, one table (round $1)" "$(insert_events events "$LAST_DAY")"; }
days() { sql "CHECKPOINT"; measure "insert, a day's partition of $DAYS (round $1)" "$(insert_events events_days "$LAST_DAY")"; }
flat 1
days 1
sql "TRUNCATE events; TRUNCATE events_days"
days 2
flat 2
sql "TRUNCATE events; TRUNCATE events_days"
log "$ROWS events spread over the $DAYS days into both, for the reads"
sql "$(insert_events events "$SPREAD")"
sql "$(insert_events events_days "$SPREAD")"

# 400 endpoints with 1,000 due deliveries each: the first 200 with the steady state's
# queue (events of the last day, as a queue a few seconds long holds), the other 200 with a
# backlog of events spread over all the days (as after a long outage).
ENDPOINTS=200
N=$((ENDPOINTS * 1000))
PER_DAY=$((ROWS / DAYS))
queue() {
  sql "INSERT INTO deliveries (id, account_id, event_id, endpoint_id, event_type, status, created_at, updated_at)
         SELECT 'dlv_$1' || lpad(k::text, 22, '0'), 'acc_' || lpad((g % 200)::text, 26, '0'), $ID,
                'ep_$1' || lpad((k % $ENDPOINTS)::text, 22, '0'), 'task.completed', 'pending', now(), now()
         FROM (SELECT k, $2 AS g FROM generate_series(0, $N - 1) k) picked"
}
queue 0000 "$ROWS - $PER_DAY + k::bigint * $PER_DAY / $N"
queue 0001 "k::bigint * $ROWS / $N"
sql "INSERT INTO delivery_queue (endpoint_id, delivery_id, due_at)
       SELECT endpoint_id, id, now() - interval '1 minute' FROM deliveries"
sql "VACUUM ANALYZE"

log "the delivery fetch's read, 20 s each, one client, prepared (deliveries/s and µs per delivery)"
# $1 the events table, $2 deliveries a fetch, $3 the queue (0000 the last day's, 0001 spread).
fetch() {
  cat > "$WORK/fetch.sql" <<SQL
\set ep random(0, $((ENDPOINTS - 1)))
SELECT d.id, d.event_id, d.event_type, d.attempt_count, d.budget_from, d.created_at, ev.payload
FROM delivery_queue q JOIN deliveries d ON d.id = q.delivery_id JOIN $1 ev ON ev.id = d.event_id
WHERE q.endpoint_id = 'ep_$3' || lpad(:ep::text, 22, '0') AND q.due_at <= now()
ORDER BY q.delivery_id LIMIT $2;
SQL
  local tps
  tps="$(pgbench -n -M prepared -T 20 -c 1 -f "$WORK/fetch.sql" "$URL" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')"
  awk -v n="$4, $2 a fetch" -v tps="$tps" -v lim="$2" 'BEGIN {
    printf "  %-66s %9.0f deliveries/s %7.2f µs/delivery\n", n, tps * lim, 1e6 / (tps * lim) }'
}
for queue in "0000 the last day's events" "0001 events of every day"; do
  for limit in 50 200; do
    for _ in 1 2; do
      fetch events "$limit" "${queue%% *}" "one table, ${queue#* }"
      fetch events_days "$limit" "${queue%% *}" "$DAYS day partitions, ${queue#* }"
      # The day's partition named, as a server that knows each id's day could: no pruning.
      if [ "${queue%% *}" = 0000 ]; then
        fetch "events_days_p$DAYS" "$limit" 0000 "its day's partition by name, ${queue#* }"
      fi
    done
  done
done
