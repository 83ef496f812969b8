#!/usr/bin/env bash
# Instructions per delivery in the server, counted by callgrind: repeatable where a
# throughput figure on a shared 2-core box moves ±15 % from run to run. Runs the end-to-end
# scenario at 100 deliveries/s (2 accounts) for 30 s with `webhooks serve` under valgrind,
# then prints the serve process's instructions per delivered delivery, in all and for the
# parts of the hot path named below (inclusive: a part includes what it calls).
#
#   bench/callgrind.sh [BINARY]     # default target/release/webhooks; build it first
#
# Compare two builds by running it on each. The total also counts what does not scale with
# deliveries (startup, idle polls, batches that are smaller when the process is slower), so
# it moves a few percent between runs; the parts under the dispatcher move far less.
# valgrind hides the CPU's SHA extensions, so SHA-256 runs in software here and signing
# looks several times dearer than it is on the hardware.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
BINARY="$(realpath "${1:-$ROOT/target/release/webhooks}")"
BENCH="$ROOT/target/release/webhooks-bench"
command -v valgrind >/dev/null || apt_install valgrind
[ -x "$BINARY" ] && [ -x "$BENCH" ] || { log "build first: cargo build --release -p server -p bench"; exit 1; }
provision_postgres
export BENCH_DATABASE_ADMIN_URL="$PG_ADMIN_URL"

WORK="$(mktemp -d /tmp/webhooks-callgrind.XXXX)"
cat > "$WORK/webhooks" <<EOF
#!/usr/bin/env bash
exec valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.%p" "$BINARY" "\$@"
EOF
chmod +x "$WORK/webhooks"
log "end-to-end at 100 deliveries/s for 30 s, the server under callgrind (~2 min)"
"$BENCH" --bin "$WORK/webhooks" --scenarios e2e --accounts 2 --scale 0.5 --out "$WORK/report" > "$WORK/bench.log"

# The scenario's `serve` is the busiest serve process (the other one set up the endpoints).
serve="$(for f in "$WORK"/callgrind.*; do
  grep -q '^cmd: .* serve' "$f" && echo "$(sed -n 's/^totals: //p' "$f") $f"
done | sort -n | tail -n 1 | cut -d' ' -f2)"
delivered="$(awk -F'|' '/^\| end-to-end/ { gsub(/ /, "", $9); print $9; exit }' "$WORK/report/report.md")"
[ -n "$serve" ] && [ "${delivered:-0}" -gt 0 ] || { log "no serve profile or no deliveries; see $WORK"; exit 1; }

callgrind_annotate --inclusive=yes "$serve" 2>/dev/null | awk -v n="$delivered" '
  function part(label, pattern) { parts[label] = pattern; order[++count] = label }
  BEGIN {
    part("the serve process in all", "PROGRAM TOTALS")
    part("sending (Dispatcher::send_batch)", "Dispatcher::send_batch::[{][{]closure[}][}] ")
    part("  signing both headers", "signing::(signed|signature)_headers ")
    part("  SHA-256 blocks (in software here)", "sha2::sha256::compress256 ")
    part("  URL parsing (ours and reqwest)", "url::ParseOptions::parse ")
    part("recording (record::write)", "record::write::[{][{]closure[}][}] ")
    part("  request headers as lines", "header_lines::to_lines ")
    part("ingest group commit", "group_commit::run::[{][{]closure[}][}] ")
    part("memcpy", "__memcpy_avx_unaligned_erms ")
    part("allocation (mi_free)", "mi_free ")
  }
  {
    for (label in parts) if ($0 ~ parts[label] && !(label in seen)) {
      v = $1; gsub(",", "", v); seen[label] = v
    }
  }
  END {
    printf "%d deliveries; instructions per delivery:\n", n
    for (i = 1; i <= count; i++) printf "  %-40s %9.0f\n", order[i], seen[order[i]] / n
  }'
log "profiles and the bench report are in $WORK (callgrind_annotate $serve)"
