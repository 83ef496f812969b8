#!/usr/bin/env bash
# The crash and database-outage scenarios of docs/RELIABILITY.md: `webhooks serve` and
# `webhooks worker` processes SIGKILLed under a steady load, and PostgreSQL stopped for 20 s.
# The outage runs against a private cluster the test creates (initdb in a temporary
# directory, a free port); the shared server is never stopped. ~2 min on 2 cores.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start=$SECONDS

ensure_postgres_server_binaries
provision_postgres
export TEST_DATABASE_ADMIN_URL="$PG_ADMIN_URL"

log "reliability scenarios: crash and database outage"
(cd "$ROOT" && cargo test -p server --test reliability -- --nocapture --test-threads=1)

log "reliability scenarios passed in $((SECONDS - start)) s"
