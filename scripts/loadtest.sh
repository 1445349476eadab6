#!/usr/bin/env bash
# Measures the edge against SPEC §9's throughput and latency targets, end to end, on loopback:
#
#   1. builds the release binaries once;
#   2. starts a control plane on a throw-away SQLite file (example catalog, fixed test keys)
#      and one edge synced to it, both on free 127.0.0.1 ports;
#   3. `loadtest seed`: N customers through the API, every second one on a paid Pro plan;
#   4. waits until the edge holds all of them, then `loadtest compare`: a minimal hyper server
#      with a body of the edge's size and the edge, under the same generator, closed-loop in
#      alternating rounds, then open-loop at half of each one's peak, with server CPU per request;
#   5. writes loadtest/results/compare.json and compare.svg, and stops both processes.
#
# `scripts/loadtest.sh all` does the same, then, against the same two processes:
#   6. `loadtest control-plane --mix usage`: open-loop usage reports at SPEC's 2,000/s, then a
#      closed-loop peak run (LOADTEST_PEAK_SECS, 5 s), with control-plane CPU per request;
#   7. `loadtest control-plane --mix subscriptions`: cards on file for every customer, then the
#      same at SPEC's 500 subscription changes/s (pro <-> enterprise);
#   8. `loadtest propagation`: usage `set` reports at 1,000/s, polled at the edge until visible;
#   9. `loadtest sqlite-baseline`: the bare single-row-commit loop (WAL, synchronous=FULL) on the
#      same disk, which the usage rate is compared with;
#   writing loadtest/results/control-plane-usage.json, control-plane-subscriptions.json,
#   propagation.json (each with an .svg plot) and sqlite-baseline.json.
#
# Knobs (environment, read by `loadtest` itself): LOADTEST_CUSTOMERS (1000),
# LOADTEST_CONNECTIONS (16), LOADTEST_DURATION_SECS (10), LOADTEST_WARMUP_SECS (1),
# LOADTEST_ROUNDS (4), LOADTEST_THREADS (1, generator threads); for `all` also
# LOADTEST_CONTROL_PLANE_RATE (per-mix SPEC target), LOADTEST_CHANGES_PER_SEC (1000),
# LOADTEST_CONTROL_PLANE_CONNECTIONS (64), LOADTEST_POLL_INTERVAL_US (1000),
# LOADTEST_PEAK_SECS (5). Extra arguments go to
# `loadtest compare`, e.g.
#   scripts/loadtest.sh --no-open-loop
#   scripts/loadtest.sh all --no-open-loop
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=compare
if [ "${1:-}" = all ]; then
  MODE=all
  shift
fi

export LOADTEST_CUSTOMERS="${LOADTEST_CUSTOMERS:-1000}"
export LOADTEST_CUSTOMER_PREFIX="${LOADTEST_CUSTOMER_PREFIX:-cus_}"
RESULTS="${LOADTEST_RESULTS:-loadtest/results}"

cargo build --release --quiet -p tollgate-control-plane -p tollgate-edge -p tollgate-loadtest
BIN=target/release

work="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-loadtest.XXXXXX")"
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$status" -ne 0 ]; then
    for log in "$work"/*.log; do
      [ -f "$log" ] && { echo "--- $log (last lines)"; tail -n 20 "$log"; } >&2
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Fixed test-mode keys: only ever valid for this throw-away control plane.
# Every load generator is one loopback address pushing far past a client's share: the
# per-address and per-credential limits (docs/operations.md) are off for the measurement.
export TOLLGATE_RATE_LIMIT_PER_IP=0 TOLLGATE_RATE_LIMIT_PER_KEY=0 TOLLGATE_MAX_CONNECTIONS_PER_IP=0
export TOLLGATE_SECRET_KEY=sk_test_loadtestSecretKey0000000000000
export TOLLGATE_PUBLISHABLE_KEY=pk_test_loadtestPublishableKey000000000
export TOLLGATE_LIVE_SECRET_KEY=sk_live_loadtestLiveSecretKey0000000000
export TOLLGATE_EDGE_SYNC_KEY=esk_loadtestEdgeSyncKey000000000000000

# Waits for "... listening on http://ADDR" in a log and prints ADDR.
listening_addr() {
  local log=$1 pid=$2 addr=""
  for _ in $(seq 1 600); do
    addr="$(sed -n 's|.*listening on http://\([^ /]*\).*|\1|p' "$log" | head -n 1)"
    if [ -n "$addr" ]; then
      echo "$addr"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited before listening" >&2; return 1; }
    sleep 0.1
  done
  echo "no 'listening on' line in $log after 60 s" >&2
  return 1
}

"$BIN/control-plane" serve --listen 127.0.0.1:0 --catalog catalog/example.json \
  --database-url "sqlite://$work/tollgate.db" >"$work/control-plane.log" 2>&1 &
pids+=($!)
CP_PID=$!
CP="$(listening_addr "$work/control-plane.log" "$CP_PID")"

"$BIN/edge" --listen 127.0.0.1:0 --control-plane-url "http://$CP" \
  >"$work/edge.log" 2>&1 &
pids+=($!)
EDGE_PID=$!
EDGE="$(listening_addr "$work/edge.log" "$EDGE_PID")"

case "$CP $EDGE" in
  127.0.0.1:*" "127.0.0.1:*) ;;
  *) echo "refusing non-loopback addresses: $CP $EDGE" >&2; exit 1 ;;
esac

# Prints the edge's /readyz customer count once it is ready, or nothing.
edge_customers() {
  curl -fsS "http://$EDGE/readyz" 2>/dev/null | sed -n 's/.*"customers":\([0-9]*\).*/\1/p'
}
for _ in $(seq 1 300); do
  [ -n "$(edge_customers)" ] && break
  sleep 0.1
done
[ -n "$(edge_customers)" ] || { echo "edge never became ready" >&2; exit 1; }
echo "control plane http://$CP, edge http://$EDGE (logs in $work)"

"$BIN/loadtest" seed --control-plane-url "http://$CP" --secret-key "$TOLLGATE_SECRET_KEY"

# The edge learns of the new customers through the sync stream; wait until it has them all.
for _ in $(seq 1 600); do
  have="$(edge_customers)"
  [ "${have:-0}" -ge "$LOADTEST_CUSTOMERS" ] && break
  sleep 0.1
done
echo "edge holds ${have:-0} customers"
[ "${have:-0}" -ge "$LOADTEST_CUSTOMERS" ] || { echo "the edge did not catch up" >&2; exit 1; }

mkdir -p "$RESULTS"
"$BIN/loadtest" compare --edge-url "http://$EDGE" --key "$TOLLGATE_PUBLISHABLE_KEY" \
  --edge-pid "$EDGE_PID" --json "$RESULTS/compare.json" --plot "$RESULTS/compare.svg" "$@"

[ "$MODE" = all ] || exit 0

"$BIN/loadtest" control-plane --url "http://$CP" --secret-key "$TOLLGATE_SECRET_KEY" \
  --mix usage --peak-secs "${LOADTEST_PEAK_SECS:-5}" --control-plane-pid "$CP_PID" \
  --json "$RESULTS/control-plane-usage.json" --plot "$RESULTS/control-plane-usage.svg"
"$BIN/loadtest" control-plane --url "http://$CP" --secret-key "$TOLLGATE_SECRET_KEY" \
  --mix subscriptions --peak-secs "${LOADTEST_PEAK_SECS:-5}" --control-plane-pid "$CP_PID" \
  --json "$RESULTS/control-plane-subscriptions.json" \
  --plot "$RESULTS/control-plane-subscriptions.svg"
"$BIN/loadtest" propagation --control-plane-url "http://$CP" \
  --secret-key "$TOLLGATE_SECRET_KEY" --edge-url "http://$EDGE" --key "$TOLLGATE_PUBLISHABLE_KEY" \
  --json "$RESULTS/propagation.json" --plot "$RESULTS/propagation.svg"
"$BIN/loadtest" sqlite-baseline --dir "$work" --json "$RESULTS/sqlite-baseline.json"
