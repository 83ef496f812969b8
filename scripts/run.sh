#!/usr/bin/env bash
# Run the platform locally: install what is missing, provision PostgreSQL, migrate, seed
# the demo account, then serve the dashboard, API and workers.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_rust_tools
provision_postgres
if [ -z "${DATABASE_URL:-}" ]; then
  ensure_database webhooks
  export DATABASE_URL="${PG_ADMIN_URL%/*}/webhooks"
fi
build_all

export WEBHOOKS_SITE_ROOT="$ROOT/target/site"
export WEBHOOKS_LISTEN="${WEBHOOKS_LISTEN:-127.0.0.1:3000}"
BIN="$ROOT/target/debug/webhooks"
demo="$("$BIN" seed-demo)"
email="$(sed -E 's/.*"email":"([^"]+)".*/\1/' <<<"$demo")"
password="$(sed -E 's/.*"password":"([^"]+)".*/\1/' <<<"$demo")"

cat <<TXT

  Webhooks is starting on  http://$WEBHOOKS_LISTEN/settings/webhooks
  Demo login (local only): $email / $password
  Database:                ${DATABASE_URL}
  Stop with Ctrl-C.

TXT
exec "$BIN" serve
