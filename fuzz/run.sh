#!/usr/bin/env bash
# The fuzzer that judges our OpenAPI documents: schemathesis (coverage, fuzzing and stateful
# phases; fixed seed, bounded examples) against a started control plane — on SQLite, and on
# PostgreSQL when TOLLGATE_TEST_POSTGRES_URL names a server — and against a started edge.
# Checks: not_a_server_error, status_code_conformance, content_type_conformance,
# response_schema_conformance. Strings carry no NUL character: the API refuses NUL everywhere
# (documented in the document's description; tested in control-plane/tests/api/hardening.rs). It fails on any failure and on any "schema validation
# mismatch" (operations that refuse most of what their schema allows).
#
#   fuzz/run.sh                      # uses target/debug binaries (cargo build first)
#   TOLLGATE_BIN_DIR=target/release FUZZ_MAX_EXAMPLES=50 fuzz/run.sh
#
# schemathesis is installed into a virtualenv in a temporary directory (PyPI, pinned).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
bin="${TOLLGATE_BIN_DIR:-target/debug}"
version="${SCHEMATHESIS_VERSION:-4.32.5}"
examples="${FUZZ_MAX_EXAMPLES:-25}"
seed="${FUZZ_SEED:-42}"
for b in control-plane edge; do
  [ -x "$bin/$b" ] || { echo "fuzz: $bin/$b is missing; run cargo build first" >&2; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-fuzz.XXXXXX")"
# Full schemathesis reports stay here after the run (the temp dir does not).
reports="${FUZZ_REPORT_DIR:-target/fuzz}"
mkdir -p "$reports"
# `start` runs inside $(…), a subshell, so the processes it starts are listed in a file: an
# array set there would never reach this shell, and the servers would outlive the run.
touch "$work/pids"
cleanup() {
  while read -r p; do kill "$p" 2>/dev/null || true; done <"$work/pids"
  while read -r p; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done <"$work/pids"
  rm -rf "$work"
}
trap cleanup EXIT

echo "fuzz: installing schemathesis $version into $work/venv"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "schemathesis==$version"
st="$work/venv/bin/schemathesis"

SK=sk_test_fuzzfuzzfuzzfuzzfuzz01
PK=pk_test_fuzzfuzzfuzzfuzzfuzz01
ESK=esk_fuzzfuzzfuzzfuzzfuzzfuzz01

# start NAME LOG CMD...: runs CMD in the background and prints the address it listens on.
start() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  echo $! >>"$work/pids"
  for _ in $(seq 1 600); do
    if grep -q "listening on http://" "$log"; then
      grep -o "listening on http://[0-9.:]*" "$log" | head -n 1 | sed 's/listening on http:\/\///'
      return 0
    fi
    sleep 0.1
  done
  echo "fuzz: $* did not start:" >&2
  cat "$log" >&2
  return 1
}

# fixtures ADDR CONFIG: the objects the documents' examples name (customer `user-123` with a
# card on file, the example catalog's plans), plus one of everything a path names — a
# subscription, an invoice, a test clock, a webhook endpoint, a checkout session, a portal
# link — and a schemathesis config that hands their ids to the operations. Without them most
# generated requests would only ever meet 404s.
fixtures() {
  local addr=$1 config=$2
  api() {
    curl -fsS -X "$1" "http://$addr$2" -H "Authorization: Bearer $SK" \
      -H 'content-type: application/json' ${3:+-d "$3"}
  }
  field() { python3 -c "import json,sys; v=json.load(sys.stdin); print(eval('v'+sys.argv[1]))" "$1"; }
  api POST /api/v1/customers/ '{"customerId":"user-123","email":"ada@example.com"}' >/dev/null
  api POST /api/v1/customers/user-123/payment-methods/ '{"token":"pm_card_visa"}' >/dev/null
  # Creating a subscription and buying a one-off plan each have an example customer of their
  # own (a second subscription in a group, or a second purchase, is a 409).
  for c in user-456 user-789; do
    api POST /api/v1/customers/ "{\"customerId\":\"$c\"}" >/dev/null
    api POST "/api/v1/customers/$c/payment-methods/" '{"token":"pm_card_visa"}' >/dev/null
  done
  api POST /api/v1/customers/ '{"customerId":"fuzz-archive"}' >/dev/null
  api POST /api/v1/plans/ '{"identifier":"fuzz-plan","name":"Fuzz","group":"fuzz"}' >/dev/null
  api POST /api/v1/customers/ '{"customerId":"fuzz-subscriber","email":"sub@example.com"}' >/dev/null
  api POST /api/v1/customers/fuzz-subscriber/payment-methods/ '{"token":"pm_card_visa"}' >/dev/null
  local sub invoice clock endpoint session portal
  sub="$(api POST /api/v1/subscribe/ '{"customerId":"fuzz-subscriber","planId":"pro","chargePeriod":"MONTHLY"}' | field "['subscription']['id']")"
  invoice="$(api GET "/api/v1/invoices/?customer_id=fuzz-subscriber" | field "['results'][0]['id']")"
  clock="$(api POST /api/v1/test-clocks/ '{"frozenTime":"2026-01-01T00:00:00Z"}' | field "['id']")"
  endpoint="$(api POST /api/v1/webhook-endpoints/ '{"url":"http://127.0.0.1:9/hook","events":["*"]}' | field "['id']")"
  session="$(api POST /api/v1/checkout/ '{"planIdentifier":"enterprise","chargePeriod":"MONTHLY","customerId":"fuzz-checkout","successUrl":"https://app.example.com/ok"}' | field "['checkoutSessionId']")"
  portal="$(api POST /api/v1/portal/session/ '{"customerId":"fuzz-subscriber"}' | field "['customerPortalUrl'].rsplit('/',1)[1]")"
  cat "$root/fuzz/schemathesis.toml" >"$config"
  cat >>"$config" <<TOML

# Generated by fuzz/run.sh: ids of the fixtures above.
[[operations]]
include-path-regex = "^/api/v1/customers/[{]customer_id[}]"
exclude-method = "DELETE"
parameters = { customer_id = "user-123" }

# Deleting (archiving a customer, removing cards) happens to a customer of its own, so the
# examples' customer keeps its card for the rest of the run.
[[operations]]
include-path-regex = "^/api/v1/customers/[{]customer_id[}]"
include-method = "DELETE"
parameters = { customer_id = "fuzz-archive" }

[[operations]]
include-path-regex = "^/(api/)?v1/subscriptions/[{]id[}]"
parameters = { id = "$sub" }

[[operations]]
include-path-regex = "^/api/v1/invoices/[{]id[}]"
parameters = { id = "$invoice" }

[[operations]]
include-path-regex = "^/api/v1/test-clocks/[{]id[}]"
parameters = { id = "$clock" }

[[operations]]
include-path-regex = "^/api/v1/webhook-endpoints/[{]id[}]"
parameters = { id = "$endpoint" }

[[operations]]
include-path-regex = "^/(api/v1/)?checkout/[{]session_id[}]"
parameters = { session_id = "$session" }

[[operations]]
include-path-regex = "^/portal/[{]token[}]"
parameters = { token = "$portal" }

[[operations]]
include-path-regex = "^/api/v1/features/[{]identifier[}]"
parameters = { identifier = "api-calls" }

# Replacing a plan nobody subscribes to (the example catalog's keep their subscribers' group).
[[operations]]
include-path-regex = "^/api/v1/plans/[{]identifier[}]"
parameters = { identifier = "fuzz-plan" }
TOML
}

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance

# judge NAME OUTPUT: fails on failures, errors or a schema validation mismatch.
judge() {
  local name=$1 out=$2 status=$3
  if [ "$status" != 0 ]; then
    echo "fuzz: $name: schemathesis failed (exit $status)" >&2
    return 1
  fi
  if grep -q "Schema validation mismatch" "$out"; then
    echo "fuzz: $name: the API refuses what its schema allows:" >&2
    sed -n '/Schema validation mismatch/,/^$/p' "$out" >&2
    return 1
  fi
  echo "fuzz: $name: $(grep -E '^ *[0-9]+ generated' "$out" | head -n 1 | xargs)"
}

# fuzz_control_plane NAME DATABASE_URL
fuzz_control_plane() {
  local name=$1 db=$2
  local addr
  addr="$(start "$work/cp-$name.log" env \
    TOLLGATE_SECRET_KEY=$SK TOLLGATE_PUBLISHABLE_KEY=$PK \
    TOLLGATE_LIVE_SECRET_KEY=sk_live_fuzzfuzzfuzzfuzzfuzz01 TOLLGATE_EDGE_SYNC_KEY=$ESK \
    TOLLGATE_ALLOW_PRIVATE_WEBHOOK_URLS=true RUST_LOG=warn \
    "$bin/control-plane" serve --listen 127.0.0.1:0 --database-url "$db" \
    --catalog catalog/example.json)"
  echo "fuzz: control plane ($name) on $addr"
  "$bin/control-plane" openapi >"$work/control-plane.json"
  fixtures "$addr" "$work/schemathesis-$name.toml"
  local out="$work/st-cp-$name.out" status=0
  # The sync stream never ends by design (edges hold it open); the Rust suite covers it.
  (cd "$work" && SCHEMATHESIS_HOOKS=hooks "$st" --config-file "$work/schemathesis-$name.toml" run "$work/control-plane.json" \
    --url "http://$addr" --exclude-tag edge --exclude-path /internal/sync/stream \
    -H "Authorization: Bearer $SK" \
    --phases coverage,fuzzing,stateful --checks "$checks" \
    --seed "$seed" --max-examples "$examples" --workers 1 --request-timeout 30 \
    --generation-allow-x00 false \
    --report har,ndjson --report-har-path "$root/$reports/control-plane-$name.har" \
    --report-ndjson-path "$root/$reports/control-plane-$name.ndjson" \
    --no-color >"$out" 2>&1) || status=$?
  cp "$out" "$reports/control-plane-$name.txt"
  if [ "$status" != 0 ]; then cat "$out"; else tail -n 25 "$out"; fi
  judge "control plane ($name)" "$out" "$status"
  CP_ADDR=$addr
}

cp "$root/fuzz/hooks.py" "$work/hooks.py"
fuzz_control_plane sqlite "sqlite://$work/fuzz.db"

# The edge, fed by the SQLite control plane above.
edge_addr="$(start "$work/edge.log" env RUST_LOG=warn "$bin/edge" --listen 127.0.0.1:0 \
  --control-plane-url "http://$CP_ADDR" --sync-key $ESK)"
for _ in $(seq 1 300); do
  curl -fs "http://$edge_addr/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
"$bin/control-plane" openapi --edge >"$work/edge.json"
out="$work/st-edge.out"; status=0
(cd "$work" && "$st" --config-file "$root/fuzz/schemathesis.toml" run "$work/edge.json" --url "http://$edge_addr" \
  -H "Authorization: Bearer $PK" \
  --phases coverage,fuzzing,stateful --checks "$checks" \
  --seed "$seed" --max-examples "$examples" --workers 1 \
  --no-color >"$out" 2>&1) || status=$?
cp "$out" "$reports/edge.txt"
if [ "$status" != 0 ]; then cat "$out"; else tail -n 15 "$out"; fi
judge edge "$out" "$status"

if [ -n "${TOLLGATE_TEST_POSTGRES_URL:-}" ]; then
  dbname="fuzz_$$_$RANDOM"
  psql "$TOLLGATE_TEST_POSTGRES_URL" -qAtc "CREATE DATABASE $dbname" >/dev/null
  fuzz_control_plane postgres "${TOLLGATE_TEST_POSTGRES_URL%/*}/$dbname"
else
  echo "fuzz: TOLLGATE_TEST_POSTGRES_URL is not set; the PostgreSQL run is skipped" >&2
  [ -z "${CI:-}" ] || { echo "fuzz: CI needs PostgreSQL" >&2; exit 1; }
fi
echo "fuzz: passed"
