#!/usr/bin/env bash
# Fuzzes the REST API from its own OpenAPI document with schemathesis (PyPI), issue 7 item 4:
# no 5xx, responses (status and body) matching the schema. Runs the built `webhooks serve`
# on a free port against a fresh database (dropped afterwards), with an account and API key
# made by the CLI. Bounded: SCHEMATHESIS_MAX_EXAMPLES cases per operation (default 40),
# SCHEMATHESIS_MAX_TIME seconds in all (default 100).
#
#   ./scripts/schemathesis.sh          # after `cargo build -p server --bin webhooks`
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN="${WEBHOOKS_BIN:-$ROOT/target/debug/webhooks}"
[ -x "$BIN" ] || (cd "$ROOT" && cargo build -p server --bin webhooks)
[ -n "${PG_ADMIN_URL:-}" ] || provision_postgres
ensure_schemathesis

db="webhooks_fuzz_$$_$RANDOM"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
work="$(mktemp -d)"
export DATABASE_URL="${PG_ADMIN_URL%/*}/$db"
export WEBHOOKS_LISTEN="127.0.0.1:$port"
export WEBHOOKS_MAIL_DIR="$work/mail"
# Only the loopback receiver below is allow-listed; endpoints schemathesis invents fail the
# reachability check or the SSRF guard, so the workers send nothing anywhere else.
export WEBHOOKS_ALLOW_HOSTS="127.0.0.1"
export WEBHOOKS_EXTRA_CA="$work/ca.pem"
export WEBHOOKS_RETRY_SCHEDULE="500ms"
server_pid=""
receiver_pid=""

cleanup() {
  # Under `set -e` a failing `wait` (a killed process answers 143) would become our status.
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$receiver_pid" ]; then kill "$receiver_pid" 2>/dev/null; wait "$receiver_pid" 2>/dev/null || true; fi
  psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# A loopback HTTPS receiver with its own CA (answers 200, or 500 under /fail), so the API
# has real endpoints, deliveries and attempts to serve.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=Fuzz CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$work/leaf.key" -out "$work/leaf.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$work/leaf.ext"
openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
  -extfile "$work/leaf.ext" -out "$work/leaf.pem" 2>/dev/null
rport="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 - "$rport" "$work" <<'PY' &
import http.server, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        status = 500 if self.path.startswith("/fail") else 200
        self.send_response(status); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"ok")
    do_GET = do_POST = answer
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(f"{sys.argv[2]}/leaf.pem", f"{sys.argv[2]}/leaf.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
PY
receiver_pid=$!

psql "$PG_ADMIN_URL" -qc "CREATE DATABASE \"$db\"" >/dev/null
"$BIN" migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log"; exit 1; }
key="$("$BIN" account create --name Fuzz --owner-email fuzz@example.test --owner-password 'fuzz-password-123' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')"

"$BIN" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.2
done

# Seed data: an endpoint that accepts, one that fails (its deliveries dead-letter after
# one quick retry), events for both, a bulk retry. Their ids seed the path parameters.
api() { curl -fsS -X "$1" "http://127.0.0.1:$port/api/v1$2" -H "Authorization: Bearer $key" -H 'content-type: application/json' ${3:+-d "$3"}; }
json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
types='["task.completed","task.created"]'
ok_ep="$(api POST /endpoints "{\"url\":\"https://127.0.0.1:$rport/hook\",\"event_types\":$types}" | json_field '["id"]')"
fail_ep="$(api POST /endpoints "{\"url\":\"https://127.0.0.1:$rport/fail\",\"event_types\":$types}" | json_field '["id"]')"
for n in 1 2 3; do api POST /events "{\"type\":\"task.completed\",\"data\":{\"object\":{\"n\":$n}}}" >/dev/null; done
for _ in $(seq 1 100); do
  failed="$(api GET "/endpoints/$fail_ep/deliveries?status=failed" | json_field '["data"].__len__()')"
  delivered="$(api GET "/endpoints/$ok_ep/deliveries?status=delivered" | json_field '["data"].__len__()')"
  # The failing endpoint's breaker opens at 5 failed attempts, so not all 3 dead-letter soon.
  [ "$failed" -ge 1 ] && [ "$delivered" = 3 ] && break
  sleep 0.2
done
deliveries="$( (api GET "/endpoints/$ok_ep/deliveries"; echo; api GET "/endpoints/$fail_ep/deliveries"; echo) \
  | python3 -c 'import json, sys; [print(d["id"]) for line in sys.stdin if line.strip() for d in json.loads(line)["data"]]')"
bulk="$(api POST "/endpoints/$fail_ep/bulk-retry" '{"since":"2000-01-01T00:00:00Z","until":"2100-01-01T00:00:00Z"}' | json_field '["id"]')"
quote() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@"; }
cat >"$work/schemathesis.toml" <<TOML
[dictionaries.endpoints]
values = $(quote "$ok_ep" "$fail_ep")
[dictionaries.deliveries]
values = $(quote $deliveries)
[dictionaries.bulk]
values = $(quote "$bulk")

[[operations]]
include-path-regex = "^/api/v1/endpoints/"
parameters = { "path.id" = { dictionary = "endpoints", probability = 0.8 } }
[[operations]]
include-path-regex = "^/api/v1/deliveries/"
parameters = { "path.id" = { dictionary = "deliveries", probability = 0.8 } }
[[operations]]
include-path-regex = "^/api/v1/bulk-retries/"
parameters = { "path.id" = { dictionary = "bulk", probability = 0.8 } }
TOML
log "seeded in ${SECONDS} s: endpoints $ok_ep $fail_ep, $(echo "$deliveries" | wc -w) deliveries, bulk retry $bulk"

log "schemathesis against http://127.0.0.1:$port/api/v1/openapi.json"
status=0
# From the scratch directory: schemathesis keeps a `.schemathesis/` cache in the working directory.
cd "$work"
"$DATA_DIR/venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --url "http://127.0.0.1:$port" \
  -H "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-40}" \
  --max-time "${SCHEMATHESIS_MAX_TIME:-100}" \
  --seed "${SCHEMATHESIS_SEED:-7}" \
  --request-timeout 20 \
  --generation-database none \
  --workers 2 \
  --no-color || status=$?

if [ "$status" != 0 ]; then
  log "schemathesis found problems; server log tail:"
  grep -E 'ERROR|WARN' "$work/server.log" | tail -n 20 >&2 || true
fi
log "schemathesis finished after ${SECONDS} s in all (status $status)"
exit "$status"
