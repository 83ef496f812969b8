# Sourced by bench/retention.sh and bench/event_days.sh, after they define `sql` (runs SQL
# on their scratch database) and ROWS.
# measure NAME SQL: runs one step, prints its name, seconds and WAL bytes, in all and per row.
measure() {
  local name="$1" body="$2" lsn t0 t1 wal
  lsn="$(sql "SELECT pg_current_wal_insert_lsn()")"
  t0="$(date +%s%N)"
  sql "$body"
  t1="$(date +%s%N)"
  wal="$(sql "SELECT pg_current_wal_insert_lsn() - '$lsn'::pg_lsn")"
  awk -v n="$name" -v ns="$((t1 - t0))" -v wal="$wal" -v rows="$ROWS" 'BEGIN {
    printf "  %-44s %8.2f s %9.1f µs/row %10.0f MB WAL %7.0f B/row\n", n, ns / 1e9, ns / 1e3 / rows, wal / 1e6, wal / rows }'
}
