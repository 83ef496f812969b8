# Shared by scripts/run.sh and scripts/test.sh: install what is missing, find or start
# PostgreSQL. Every step is skipped when its tool is already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="$ROOT/.data"
PRIVATE_PG_PORT="${PRIVATE_PG_PORT:-54329}"
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  log "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_rust_tools() {
  if ! rustup target list --installed | grep -q '^wasm32-unknown-unknown$'; then
    log "adding the wasm32 target"
    rustup target add wasm32-unknown-unknown
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q ' 0.2.130'; then
    log "installing wasm-bindgen-cli 0.2.130 (~2 min, once)"
    cargo install wasm-bindgen-cli --version 0.2.130
  fi
  if ! leptosfmt --version 2>/dev/null | grep -q '0.1.33'; then
    log "installing leptosfmt 0.1.33 (~3 min on 2 cores, once)"
    cargo install leptosfmt --locked --version 0.1.33
  fi
  if ! cargo leptos --version 2>/dev/null | grep -q '0.3.10'; then
    log "installing cargo-leptos 0.3.10 (~19 min on 2 cores, once)"
    cargo install cargo-leptos --locked --version 0.3.10
  fi
}

ensure_chromium() {
  [ -x /usr/bin/chromium ] || apt_install chromium
}

ensure_node_modules() {
  if [ ! -d "$ROOT/end2end/node_modules/@playwright/test" ]; then
    log "installing Playwright (the browser is Debian's chromium; nothing is downloaded)"
    (cd "$ROOT/end2end" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
}

# The official receiver libraries, to prove deliveries verify with them unchanged.
ensure_verify_python() {
  if ! "$DATA_DIR/venv/bin/python" -c 'import standardwebhooks, stripe' 2>/dev/null; then
    log "installing standardwebhooks and stripe (PyPI) into .data/venv"
    python3 -m venv "$DATA_DIR/venv"
    "$DATA_DIR/venv/bin/pip" install -q standardwebhooks==1.1.0 stripe==16.1.0
  fi
}

# schemathesis (PyPI) for fuzzing the REST API from its OpenAPI document, pinned.
ensure_schemathesis() {
  if ! "$DATA_DIR/venv/bin/schemathesis" --version 2>/dev/null | grep -q ' 4.32.5$'; then
    log "installing schemathesis 4.32.5 (PyPI) into .data/venv"
    [ -x "$DATA_DIR/venv/bin/pip" ] || python3 -m venv "$DATA_DIR/venv"
    "$DATA_DIR/venv/bin/pip" install -q schemathesis==4.32.5
  fi
}

pg_bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# Starts (creating on first use) a private cluster under .data/pg, owned by `postgres`
# because initdb refuses to run as root.
start_private_postgres() {
  local bin
  bin="$(pg_bin_dir)"
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    apt_install postgresql
    bin="$(pg_bin_dir)"
  fi
  local dir="$DATA_DIR/pg"
  local run_as=()
  [ "$(id -u)" = 0 ] && run_as=(runuser -u postgres --)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    log "creating a private PostgreSQL cluster in $dir"
    "${run_as[@]}" "$bin/initdb" -D "$dir" -U postgres --auth=trust >/dev/null
  fi
  if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$PRIVATE_PG_PORT"; then
    log "starting the private PostgreSQL on 127.0.0.1:$PRIVATE_PG_PORT"
    "${run_as[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
      -o "-p $PRIVATE_PG_PORT -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
  fi
}

pg_answers() { # host port
  if command -v pg_isready >/dev/null; then pg_isready -q -h "$1" -p "$2"; else (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; fi
}

# Sets PG_ADMIN_URL (a URL to the `postgres` database of the server to use), following
# SPEC §3: DATABASE_URL when set, else a local server on :5432, else a private cluster.
provision_postgres() {
  # The scripts, start-server.sh and the bench talk to PostgreSQL through psql; a machine
  # can have a server answering on :5432 without the client installed.
  command -v psql >/dev/null || apt_install postgresql-client
  if [ -n "${DATABASE_URL:-}" ]; then
    PG_ADMIN_URL="${DATABASE_URL%/*}/postgres"
  elif pg_answers 127.0.0.1 5432; then
    PG_ADMIN_URL="postgres://postgres@127.0.0.1:5432/postgres"
  else
    start_private_postgres
    PG_ADMIN_URL="postgres://postgres@127.0.0.1:$PRIVATE_PG_PORT/postgres"
  fi
  export PG_ADMIN_URL
}

# Creates database $1 on the provisioned server unless it exists.
ensure_database() {
  local name="$1"
  if ! psql "$PG_ADMIN_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE \"$name\"" >/dev/null
  fi
}

# The wasm bundle, CSS and assets into target/site (cargo-leptos), and the server binary.
build_all() {
  log "building the site (wasm + css) with cargo-leptos"
  (cd "$ROOT" && cargo leptos build)
  log "building the server"
  (cd "$ROOT" && cargo build -p server --bin webhooks)
}

# The PostgreSQL server binaries (initdb, pg_ctl), for scenarios that run a private cluster
# they can stop and start; sets PG_BIN_DIR.
ensure_postgres_server_binaries() {
  if [ -z "$(pg_bin_dir)" ] || [ ! -x "$(pg_bin_dir)/initdb" ]; then
    apt_install postgresql
  fi
  PG_BIN_DIR="$(pg_bin_dir)"
  export PG_BIN_DIR
}
