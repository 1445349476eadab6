#!/usr/bin/env bash
# The fuzzer that judges our OpenAPI documents: schemathesis (coverage, fuzzing and stateful
# phases; fixed seed, bounded examples) against a started control plane — on SQLite, and on
# PostgreSQL when TOLLGATE_TEST_POSTGRES_URL names a server — and against a started edge.
# Checks: not_a_server_error, status_code_conformance, content_type_conformance,
# response_schema_conformance. It fails on any failure and on any "schema validation
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
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
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
  pids+=($!)
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
  local out="$work/st-cp-$name.out" status=0
  # The sync stream never ends by design (edges hold it open); the Rust suite covers it.
  (cd "$work" && SCHEMATHESIS_HOOKS=hooks "$st" --config-file "$root/fuzz/schemathesis.toml" run "$work/control-plane.json" \
    --url "http://$addr" --exclude-tag edge --exclude-path /internal/sync/stream \
    -H "Authorization: Bearer $SK" \
    --phases coverage,fuzzing,stateful --checks "$checks" \
    --seed "$seed" --max-examples "$examples" --workers 2 --request-timeout 30 \
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
  --seed "$seed" --max-examples "$examples" --workers 2 \
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
