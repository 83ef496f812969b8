#!/usr/bin/env bash
# Started by Playwright (webServer): the built server on its own port and its own database.
set -euo pipefail
admin="${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
psql "$admin" -qc "CREATE DATABASE \"$E2E_DB\"" >/dev/null
export DATABASE_URL="$E2E_DATABASE_URL"
export WEBHOOKS_LISTEN="127.0.0.1:$E2E_PORT"
# Loopback receivers with the test CA, as the tests run them (SPEC §7 allow-list).
export WEBHOOKS_ALLOW_HOSTS="localhost,127.0.0.1"
export WEBHOOKS_EXTRA_CA="$E2E_CA_DIR/ca.pem"
# One quick retry, so a failing delivery is dead-lettered within a test.
export WEBHOOKS_RETRY_SCHEDULE="300ms"
export WEBHOOKS_SITE_ROOT="${WEBHOOKS_SITE_ROOT:-../target/site}"
exec "${WEBHOOKS_BIN:-../target/debug/webhooks}" serve
