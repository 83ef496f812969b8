#!/usr/bin/env bash
# The benchmark of issue 6 in one command: release build, a fresh template database on the
# local PostgreSQL, every scenario, and the report (printed, and in bench/out/report.md).
# Arguments go to webhooks-bench: e.g. `bench/run.sh --scenarios e2e --scale 0.2`.
# Scenarios (--scenarios, comma-separated; default all): ingest, ingest-fanout, ingest-single,
# e2e, e2e-100, fanout, flaky, overload, outage, scaleout; apalis and retention run only when
# named. Per-second series of each delivery scenario
# go to bench/out/<scenario>-series.csv beside report.md.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
start=$SECONDS
provision_postgres
export BENCH_DATABASE_ADMIN_URL="$PG_ADMIN_URL"
log "release build of the server and the bench (~10 min on 2 cores from clean)"
(cd "$ROOT" && cargo build --release -p server -p bench)
log "running the scenarios"
(cd "$ROOT" && target/release/webhooks-bench "$@")
log "bench finished in $((SECONDS - start)) s (build included)"
