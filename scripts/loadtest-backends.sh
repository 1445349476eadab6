#!/usr/bin/env bash
# The control plane's write path on each backend, in one run on this machine (issue 7's
# "PostgreSQL column"): SQLite (embedded), PostgreSQL with one replica, PostgreSQL with two
# replicas on the same database. For each:
#
#   * usage reports: open loop at 2,000/s (p99), then a closed-loop peak;
#   * subscription changes: the same (1,000/s open loop);
#   * propagation: usage `set`s at 1,000 changes/s to one replica, polled at an edge streaming
#     from the other (the same one on SQLite): commit -> visible p99;
#
# plus the bare SQLite single-row-commit loop on the same disk. Two replicas get two
# generators at once, one per replica, each with half the rate; their rates are summed.
# Writes loadtest/results/backends.json and prints a markdown table for BENCHMARKS.md.
#
# PostgreSQL: LOADTEST_POSTGRES_URL (an admin URL) if set, else a throw-away server started here
# with initdb + pg_ctl (as the postgres user when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

export LOADTEST_CUSTOMERS="${LOADTEST_CUSTOMERS:-1000}"
export LOADTEST_CUSTOMER_PREFIX="${LOADTEST_CUSTOMER_PREFIX:-cus_}"
PEAK="${LOADTEST_PEAK_SECS:-5}"
DURATION="${LOADTEST_DURATION_SECS:-5}"
RESULTS="${LOADTEST_RESULTS:-loadtest/results}"
mkdir -p "$RESULTS"

cargo build --release --quiet -p tollgate-control-plane -p tollgate-edge -p tollgate-loadtest
BIN=target/release

work="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-backends.XXXXXX")"
# Processes are started in subshells ($(start_cp …)), so their pids go to a file.
touch "$work/pids"
stop_all() {
  while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done <"$work/pids"
  while read -r pid; do while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; done <"$work/pids"
  : >"$work/pids"
}
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  stop_all
  if [ -n "${PG_DATA:-}" ]; then as_postgres "$PG_CTL" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Every load generator is one loopback address pushing far past a client's share: the
# per-address and per-credential limits (docs/operations.md) are off for the measurement.
export TOLLGATE_RATE_LIMIT_PER_IP=0 TOLLGATE_RATE_LIMIT_PER_KEY=0 TOLLGATE_MAX_CONNECTIONS_PER_IP=0
export TOLLGATE_SECRET_KEY=sk_test_loadtestSecretKey0000000000000
export TOLLGATE_PUBLISHABLE_KEY=pk_test_loadtestPublishableKey000000000
export TOLLGATE_LIVE_SECRET_KEY=sk_live_loadtestLiveSecretKey0000000000
export TOLLGATE_EDGE_SYNC_KEY=esk_loadtestEdgeSyncKey000000000000000

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 300); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "$1 never came up" >&2; return 1; }

if [ -n "${LOADTEST_POSTGRES_URL:-}" ]; then
  PG_ADMIN="$LOADTEST_POSTGRES_URL"
else
  PG_CTL="$(ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1)"
  INITDB="$(dirname "$PG_CTL")/initdb"
  [ "$(id -u)" = 0 ] && chown postgres "$work"
  PG_DATA="$work/pg"
  PG_PORT="$(free_port)"
  as_postgres "$INITDB" -D "$PG_DATA" -A trust -U postgres >/dev/null
  as_postgres "$PG_CTL" -D "$PG_DATA" -l "$work/postgres.log" -w \
    -o "-p $PG_PORT -k $work -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
  PG_ADMIN="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
fi
fresh_pg() {
  local name="lt_$(date +%s%N)"
  psql "$PG_ADMIN" -Atqc "CREATE DATABASE $name" >/dev/null
  echo "${PG_ADMIN%/*}/$name"
}

# start_cp URL -> prints the port; the pid goes into pids
start_cp() {
  local url=$1 port
  port="$(free_port)"
  RUST_LOG=warn "$BIN/control-plane" serve --listen "127.0.0.1:$port" --catalog catalog/example.json \
    --database-url "$url" >"$work/cp-$port.log" 2>&1 &
  echo $! >>"$work/pids"
  wait_up "http://127.0.0.1:$port/healthz"
  echo "$port"
}
start_edge() {
  local cps=$1 port
  port="$(free_port)"
  RUST_LOG=warn "$BIN/edge" --listen "127.0.0.1:$port" --control-plane-url "$cps" >"$work/edge-$port.log" 2>&1 &
  echo $! >>"$work/pids"
  wait_up "http://127.0.0.1:$port/readyz"
  echo "$port"
}

# run_setup NAME URL REPLICAS
run_setup() {
  local name=$1 url=$2 replicas=$3 a b edge
  a="$(start_cp "$url")"
  b="$a"
  if [ "$replicas" = 2 ]; then b="$(start_cp "$url")"; fi
  edge="$(start_edge "http://127.0.0.1:$b")"
  "$BIN/loadtest" seed --control-plane-url "http://127.0.0.1:$a" --secret-key "$TOLLGATE_SECRET_KEY" >/dev/null
  for mix in usage subscriptions; do
    local rate=2000
    [ "$mix" = subscriptions ] && rate=1000
    if [ "$replicas" = 2 ]; then
      "$BIN/loadtest" control-plane --url "http://127.0.0.1:$a" --secret-key "$TOLLGATE_SECRET_KEY" --mix "$mix" \
        --rate $((rate / 2)) --duration "$DURATION" --peak-secs "$PEAK" --connections 32 --quiet \
        --json "$work/$name-$mix-a.json" >/dev/null &
      local g=$!
      "$BIN/loadtest" control-plane --url "http://127.0.0.1:$b" --secret-key "$TOLLGATE_SECRET_KEY" --mix "$mix" \
        --rate $((rate / 2)) --duration "$DURATION" --peak-secs "$PEAK" --connections 32 --quiet \
        --json "$work/$name-$mix-b.json" >/dev/null || true
      wait "$g" || true
    else
      "$BIN/loadtest" control-plane --url "http://127.0.0.1:$a" --secret-key "$TOLLGATE_SECRET_KEY" --mix "$mix" \
        --rate "$rate" --duration "$DURATION" --peak-secs "$PEAK" --quiet \
        --json "$work/$name-$mix-a.json" >/dev/null || true
    fi
  done
  "$BIN/loadtest" propagation --control-plane-url "http://127.0.0.1:$a" --secret-key "$TOLLGATE_SECRET_KEY" \
    --edge-url "http://127.0.0.1:$edge" --key "$TOLLGATE_PUBLISHABLE_KEY" --duration "$DURATION" \
    --json "$work/$name-propagation.json" --quiet >/dev/null || true
  stop_all
}

run_setup sqlite "sqlite://$work/tollgate.db" 1
run_setup postgres-1 "$(fresh_pg)" 1
run_setup postgres-2 "$(fresh_pg)" 2
"$BIN/loadtest" sqlite-baseline --dir "$work" --json "$work/sqlite-baseline.json" >/dev/null

python3 - "$work" "$RESULTS/backends.json" <<'PY'
import json, os, sys
work, out = sys.argv[1], sys.argv[2]
def load(name):
    p = os.path.join(work, name)
    return json.load(open(p))["summary"] if os.path.exists(p) else None
rows = {}
for setup in ["sqlite", "postgres-1", "postgres-2"]:
    r = {}
    for mix in ["usage", "subscriptions"]:
        parts = [load(f"{setup}-{mix}-{s}.json") for s in "ab"]
        parts = [p for p in parts if p]
        r[mix] = {
            "peakPerSec": sum(p["peakRps"] for p in parts),
            "openRatePerSec": sum(p["achievedRate"] for p in parts),
            "openP99Us": max(p["p99Us"] for p in parts) if parts else None,
        }
    prop = load(f"{setup}-propagation.json")
    r["propagationP99Us"] = prop["latencyUs"]["p99"] if prop else None
    r["propagationRatePerSec"] = prop["achievedChangesPerSec"] if prop else None
    rows[setup] = r
base = json.load(open(os.path.join(work, "sqlite-baseline.json")))["commitsPerSec"]
json.dump({"setups": rows, "sqliteBaselineCommitsPerSec": base}, open(out, "w"), indent=1)
print("| | SQLite | PostgreSQL, 1 replica | PostgreSQL, 2 replicas |")
print("|---|---|---|---|")
def cell(v, fmt):
    return fmt.format(v) if v is not None else "-"
for label, get, fmt in [
    ("usage reports/s, closed-loop peak", lambda r: r["usage"]["peakPerSec"], "{:,.0f}"),
    ("usage p99 at 2,000/s open loop (ms)", lambda r: r["usage"]["openP99Us"] / 1000, "{:.1f}"),
    ("subscription changes/s, closed-loop peak", lambda r: r["subscriptions"]["peakPerSec"], "{:,.0f}"),
    ("subscription p99 at 1,000/s open loop (ms)", lambda r: r["subscriptions"]["openP99Us"] / 1000, "{:.1f}"),
    ("propagation p99 at 1,000 changes/s (ms)", lambda r: r["propagationP99Us"] / 1000, "{:.1f}"),
]:
    print(f"| {label} | " + " | ".join(cell(get(rows[s]), fmt) for s in ["sqlite", "postgres-1", "postgres-2"]) + " |")
print(f"\nbare SQLite single-row commits (WAL, synchronous=FULL), same disk: {base:,.0f}/s; "
      f"usage peak / baseline = {rows['sqlite']['usage']['peakPerSec'] / base:.2f}")
PY
