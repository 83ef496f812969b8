#!/usr/bin/env bash
# Where PostgreSQL's time goes, statement by statement: runs one scenario (end-to-end by
# default) against a scratch PostgreSQL cluster started with `pg_stat_statements` loaded, then
# prints each hot statement's execution time, buffers and WAL per delivered delivery, and its
# share of all statement time. The machine's own server is left as it is: loading the module
# there needs a restart, and Debian's default settings do not load it (so `bench/run.sh`
# reports statements as n/a).
#
#   bench/statements.sh [BINARY] [SCENARIO]   # default target/release/webhooks, e2e;
#                                             # build first: cargo build --release -p server -p bench
#   STATEMENTS_LOCALE=C bench/statements.sh   # the cluster's locale (default: the provisioned
#                                             # server's, C.UTF-8 on Debian); see README on LOCALE 'C'
#
# The scratch cluster copies the provisioned server's settings that move these figures
# (autovacuum, shared_buffers, WAL size, checkpoint timeout, synchronous_commit) but not TLS,
# so sqlx talks to it in plain text. Execution time is wall clock inside PostgreSQL: on a
# saturated box it includes waiting for a core, so compare shares and buffers between builds
# rather than microseconds between machines.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
BINARY="$(realpath "${1:-$ROOT/target/release/webhooks}")"
SCENARIO="${2:-e2e}"
BENCH="$ROOT/target/release/webhooks-bench"
[ -x "$BINARY" ] && [ -x "$BENCH" ] || { log "build first: cargo build --release -p server -p bench"; exit 1; }
provision_postgres
ensure_postgres_server_binaries

LOCALE="${STATEMENTS_LOCALE:-$(psql -X -At "$PG_ADMIN_URL" -c "SELECT datcollate FROM pg_database WHERE datname = current_database()")}"
settings=()
for name in autovacuum shared_buffers max_wal_size checkpoint_timeout synchronous_commit; do
  value="$(psql -X -At "$PG_ADMIN_URL" -c "SHOW $name")" && settings+=(-c "$name=$value")
done

WORK="$(mktemp -d /tmp/webhooks-statements.XXXX)"
PORT="${STATEMENTS_PG_PORT:-54339}"
run_as=()
[ "$(id -u)" = 0 ] && { chown postgres:postgres "$WORK"; run_as=(runuser -u postgres --); }
"${run_as[@]}" "$PG_BIN_DIR/initdb" -D "$WORK/pg" -U postgres --auth=trust --encoding=UTF8 --locale="$LOCALE" >/dev/null
"${run_as[@]}" "$PG_BIN_DIR/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w -o "-p $PORT -k $WORK \
  -c listen_addresses=127.0.0.1 -c shared_preload_libraries=pg_stat_statements ${settings[*]}" start >/dev/null
trap '"${run_as[@]}" "$PG_BIN_DIR/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null; rm -rf "$WORK"' EXIT
ADMIN="postgres://postgres@127.0.0.1:$PORT/postgres"
psql -X -q "$ADMIN" -c "CREATE EXTENSION pg_stat_statements"

log "$SCENARIO against a scratch cluster on :$PORT (locale $LOCALE) with pg_stat_statements (~2 min)"
BENCH_DATABASE_ADMIN_URL="$ADMIN" "$BENCH" --bin "$BINARY" --scenarios "$SCENARIO" --out "$WORK/report" > "$WORK/bench.log" 2>&1 \
  || { cat "$WORK/bench.log"; exit 1; }
grep -m1 '^| ' "$WORK/report/report.md" >/dev/null || { log "no report; see $WORK/bench.log"; exit 1; }
delivered="$(awk -F'|' 'f && /^\| / { gsub(/ /, "", $9); print $9; exit } /^\| scenario/ { getline; f = 1 }' "$WORK/report/report.md")"
[ "${delivered:-0}" -gt 0 ] || { log "nothing delivered; see $WORK"; exit 1; }
awk '/^\| scenario/ { print; getline; getline; print; exit }' "$WORK/report/report.md"

# Utility statements (CREATE/DROP DATABASE, transaction control)
# are left out; the bench's own sampling of the statistics views is shown, as it costs too.
psql -X -q "$ADMIN" -v n="$delivered" <<'SQL'
\pset footer off
SELECT :n AS "delivered";
WITH s AS (
  SELECT * FROM pg_stat_statements
  WHERE query !~* '^\s*(CREATE|DROP|ALTER|BEGIN|COMMIT|ROLLBACK|SET|SHOW)'
)
SELECT calls,
       round(total_exec_time::numeric * 1000 / :n, 1) AS "µs / delivery",
       round(100 * total_exec_time::numeric / sum(total_exec_time::numeric) OVER (), 1) AS "% of time",
       round(shared_blks_hit::numeric / :n, 2) AS "buffers hit / delivery",
       round(wal_records::numeric / :n, 2) AS "WAL records / delivery",
       round(wal_bytes / :n) AS "WAL B / delivery",
       left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS statement
FROM s ORDER BY total_exec_time DESC LIMIT 12;
SQL
