#!/usr/bin/env bash
# Renewals charged per second through payment intents (issue 14), against the build before
# them, side by side in one run, plus the usage-report rate of both (does the payments worker
# cost the write path anything?):
#
#   1. builds the release control plane of BASE (default 33da10e, the last commit before payment
#      intents) in a git worktree, then this checkout's control plane and loadtest, sharing
#      one target directory (only the workspace crates build twice);
#   2. starts both on throw-away SQLite files (fixed test keys, the example catalog);
#   3. `loadtest seed` (usage needs customers) on both, then ROUNDS pairs, alternating which
#      build goes first: `loadtest renewals` (LOADTEST_RENEWALS_CUSTOMERS, 500, on a test clock,
#      3 months each) and `loadtest control-plane --mix usage` closed-loop peak (5 s);
#   4. writes loadtest/results/renewals-bench.json and prints the ratios.
#
#   scripts/renewals-bench.sh            # BASE=33da10e ROUNDS=2
set -euo pipefail
cd "$(dirname "$0")/.."

BASE="${BASE:-33da10e}"
ROUNDS="${ROUNDS:-2}"
CUSTOMERS="${LOADTEST_RENEWALS_CUSTOMERS:-500}"
RESULTS="${LOADTEST_RESULTS:-loadtest/results}"
export LOADTEST_CUSTOMERS="${LOADTEST_CUSTOMERS:-1000}"
export LOADTEST_QUIET=true

work="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-renewals.XXXXXX")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  git worktree remove --force "$work/base" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TARGET="$(pwd)/target"
git worktree add --detach --quiet "$work/base" "$BASE"
(cd "$work/base" && CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet -p tollgate-control-plane)
cp "$TARGET/release/control-plane" "$work/control-plane-base"
cargo build --release --quiet -p tollgate-control-plane -p tollgate-loadtest
cp target/release/control-plane "$work/control-plane-new"
LOADTEST=target/release/loadtest

# Every load generator is one loopback address pushing far past a client's share: the
# per-address and per-credential limits (docs/operations.md) are off for the measurement.
export TOLLGATE_RATE_LIMIT_PER_IP=0 TOLLGATE_RATE_LIMIT_PER_KEY=0 TOLLGATE_MAX_CONNECTIONS_PER_IP=0
export TOLLGATE_SECRET_KEY=sk_test_loadtestSecretKey0000000000000
export TOLLGATE_PUBLISHABLE_KEY=pk_test_loadtestPublishableKey000000000
export TOLLGATE_LIVE_SECRET_KEY=sk_live_loadtestLiveSecretKey0000000000
export TOLLGATE_EDGE_SYNC_KEY=esk_loadtestEdgeSyncKey000000000000000

listening_addr() {
  local log=$1 pid=$2 addr=""
  for _ in $(seq 1 600); do
    addr="$(sed -n 's|.*listening on http://\([^ /]*\).*|\1|p' "$log" | head -n 1)"
    if [ -n "$addr" ]; then echo "$addr"; return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited before listening" >&2; return 1; }
    sleep 0.1
  done
  return 1
}

declare -A ADDR PID
for build in base new; do
  "$work/control-plane-$build" serve --listen 127.0.0.1:0 --catalog catalog/example.json \
    --database-url "sqlite://$work/$build.db" >"$work/$build.log" 2>&1 &
  pids+=($!)
  PID[$build]=$!
  ADDR[$build]="$(listening_addr "$work/$build.log" "${PID[$build]}")"
  "$LOADTEST" seed --control-plane-url "http://${ADDR[$build]}" --secret-key "$TOLLGATE_SECRET_KEY" >/dev/null
done
echo "base ($BASE) http://${ADDR[base]}, new ($(git rev-parse --short HEAD)) http://${ADDR[new]}"

mkdir -p "$RESULTS"
runs=()
for round in $(seq 1 "$ROUNDS"); do
  order="base new"
  [ $((round % 2)) -eq 0 ] && order="new base"
  for build in $order; do
    out="$work/$build-$round"
    "$LOADTEST" renewals --control-plane-url "http://${ADDR[$build]}" \
      --secret-key "$TOLLGATE_SECRET_KEY" --customers "$CUSTOMERS" --rounds 3 \
      --customer-prefix "ren${round}_" --json "$out-renewals.json" | tail -n 1 | sed "s/^/$build: /"
    "$LOADTEST" control-plane --url "http://${ADDR[$build]}" --secret-key "$TOLLGATE_SECRET_KEY" \
      --mix usage --rate 500 --duration 2 --peak-secs 5 --control-plane-pid "${PID[$build]}" \
      --json "$out-usage.json" >/dev/null
    runs+=("$build $round $out")
  done
done

python3 - "$RESULTS/renewals-bench.json" "$BASE" "$(git rev-parse --short HEAD)" "${runs[@]}" <<'PY'
import json, statistics, sys
out, base, new, *runs = sys.argv[1:]
data = {"base": {"renewals": [], "usagePeak": []}, "new": {"renewals": [], "usagePeak": []}}
for run in runs:
    build, rnd, prefix = run.split(" ")
    ren = json.load(open(prefix + "-renewals.json"))
    use = json.load(open(prefix + "-usage.json"))
    data[build]["renewals"].append(ren["medianRenewalsPerSec"])
    peak = use.get("summary", {}).get("peakRps")
    data[build]["usagePeak"].append(peak)
summary = {
    "scenario": "renewals-bench",
    "baseCommit": base,
    "newCommit": new,
    "base": data["base"],
    "new": data["new"],
}
def med(xs):
    xs = [x for x in xs if x]
    return statistics.median(xs) if xs else None
rb, rn = med(data["base"]["renewals"]), med(data["new"]["renewals"])
ub, un = med(data["base"]["usagePeak"]), med(data["new"]["usagePeak"])
summary["renewalsRatio"] = rn / rb if rb and rn else None
summary["usagePeakRatio"] = un / ub if ub and un else None
json.dump(summary, open(out, "w"), indent=2)
print(f"renewals/s: base {rb:.0f}, new {rn:.0f}, ratio {summary['renewalsRatio']:.2f}")
if summary["usagePeakRatio"]:
    print(f"usage reports/s (closed-loop peak): base {ub:.0f}, new {un:.0f}, ratio {summary['usagePeakRatio']:.2f}")
else:
    print("usage peak: not found in the control-plane JSON")
PY
