#!/usr/bin/env bash
# The whole suite: unit tests, integration tests against real PostgreSQL (a fresh database
# per test, dropped afterwards) and Playwright in Debian's chromium. One debug build serves
# every stage: `cargo test` builds the `webhooks` binary that Playwright then runs.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start=$SECONDS
# One clean build, no incremental caches: less disk and time on a fresh checkout (CI).
export CARGO_INCREMENTAL=0

log "formatting (cargo fmt --check; rustfmt.toml holds stable options only)"
(cd "$ROOT" && cargo fmt --all --check)

ensure_rust_tools
log "formatting of view! macros (leptosfmt --check; leptosfmt.toml, the width of rustfmt.toml)"
# It prints its settings and a line per file; show only what fails.
mkdir -p "$DATA_DIR"
if ! (cd "$ROOT" && leptosfmt --check --config-file leptosfmt.toml app/src >"$DATA_DIR/leptosfmt.log" 2>&1); then
  grep -v '^✅' "$DATA_DIR/leptosfmt.log" >&2
  exit 1
fi
ensure_chromium
ensure_node_modules
provision_postgres
export TEST_DATABASE_ADMIN_URL="$PG_ADMIN_URL"
ensure_verify_python
export WEBHOOKS_VERIFY_PYTHON="$DATA_DIR/venv/bin/python"

log "building the site (wasm + css) with cargo-leptos"
(cd "$ROOT" && cargo leptos build)

log "lints (clippy on every crate and target, warnings are errors)"
(cd "$ROOT" && cargo clippy --workspace --all-targets -- -D warnings)

log "unit and integration tests"
(cd "$ROOT" && cargo test -p entity -p service -p app -p server -p bench --no-fail-fast)
"$ROOT/scripts/schemathesis.sh" # fuzz the REST API from its OpenAPI document (issue 7): no 5xx, schema-conformant answers
"$ROOT/scripts/reliability.sh" # crash + database outage, ~2 min more (docs/RELIABILITY.md)

log "end-to-end tests (Playwright, chromium)"
(cd "$ROOT/end2end" && WEBHOOKS_BIN="$ROOT/target/debug/webhooks" WEBHOOKS_SITE_ROOT="$ROOT/target/site" npx playwright test)

log "all tests passed in $((SECONDS - start)) s"
