#!/usr/bin/env bash
# OpenFeature compatibility suite: OpenFeature's own SDKs and OFREP providers, unchanged,
# against real Tollgate binaries (an edge fed by a real control plane).
#
#   compat/openfeature/run.sh            # uses target/debug/control-plane and target/debug/edge
#   CONTROL_PLANE_BIN=… EDGE_BIN=… compat/openfeature/run.sh
#
# Builds nothing: build the workspace first. Installs into a temp dir:
#   * npm @openfeature/server-sdk + @openfeature/ofrep-provider (server side, one flag per call);
#   * npm @openfeature/web-sdk + @openfeature/ofrep-web-provider (bulk evaluation, change
#     detection over the advertised event stream with polling off), plus npm `eventsource`:
#     Node 20 has no EventSource, which the web provider takes from the browser;
#   * PyPI openfeature-sdk + openfeature-provider-ofrep (pytest).
# Starts a control plane (SQLite in the temp dir, or COMPAT_DATABASE_URL: an empty
# postgres://… database) with the example catalog and an edge, on random loopback ports, and
# runs the three suites. Each evaluates booleans, integers, metadata, missing flags and a
# missing targeting key; every check is a named test. Exits non-zero if any fails.
#
# Env: OF_NODE_PACKAGES, OF_PY_PACKAGES (override the pins below), PYTHON (python3),
# COMPAT_DATABASE_URL, KEEP_TMP=1 keeps the temp dir and logs, OPENFEATURE_ENV_DIR=DIR installs
# the packages there once and reuses them.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cp_bin="${CONTROL_PLANE_BIN:-$root/target/debug/control-plane}"
edge_bin="${EDGE_BIN:-$root/target/debug/edge}"
python="${PYTHON:-python3}"
node_packages="${OF_NODE_PACKAGES:-@openfeature/server-sdk@1 @openfeature/ofrep-provider@0.1 @openfeature/web-sdk@1 @openfeature/ofrep-web-provider@0.4 eventsource@4}"
py_packages="${OF_PY_PACKAGES:-openfeature-sdk==0.10.* openfeature-provider-ofrep==0.3.* pytest}"

for b in "$cp_bin" "$edge_bin"; do
    [ -x "$b" ] || { echo "missing binary $b: build the workspace first (cargo build --workspace)" >&2; exit 2; }
done
# A missing program fails in CI and skips loudly elsewhere.
for p in node npm "$python" curl; do
    if ! command -v "$p" >/dev/null; then
        if [ -n "${CI:-}" ]; then echo "compat/openfeature: $p is not installed" >&2; exit 2; fi
        echo "SKIPPED compat/openfeature: $p is not installed (CI would fail here)" >&2
        exit 0
    fi
done

tmp="$(mktemp -d -t tollgate-openfeature-XXXXXX)"
cleanup() {
    # `start` runs in a command substitution (a subshell), so the pids live in files.
    for f in "$tmp"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

envdir="${OPENFEATURE_ENV_DIR:-$tmp}"
if [ ! -x "$envdir/venv/bin/python" ] || [ ! -d "$envdir/npm/node_modules/@openfeature/ofrep-web-provider" ]; then
    echo "== installing OpenFeature's SDKs and providers into $envdir"
    "$python" -m venv "$envdir/venv"
    # shellcheck disable=SC2086
    "$envdir/venv/bin/pip" install --quiet --disable-pip-version-check $py_packages
    # shellcheck disable=SC2086
    npm install --silent --no-audit --no-fund --prefix "$envdir/npm" $node_packages >/dev/null
fi
"$envdir/venv/bin/python" -c 'import importlib.metadata as m; print("openfeature-sdk", m.version("openfeature-sdk"), "/ openfeature-provider-ofrep", m.version("openfeature-provider-ofrep"))'
for p in server-sdk ofrep-provider web-sdk ofrep-web-provider; do
    node -e "console.log('@openfeature/$p', require('$envdir/npm/node_modules/@openfeature/$p/package.json').version)"
done

key() { # a random key body, as the binaries generate them
    head -c 200 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9' | head -c 32
}
export TOLLGATE_SECRET_KEY="sk_test_$(key)"
export TOLLGATE_PUBLISHABLE_KEY="pk_test_$(key)"
export TOLLGATE_LIVE_SECRET_KEY="sk_live_$(key)"
export TOLLGATE_EDGE_SYNC_KEY="esk_$(key)"
export RUST_LOG="${RUST_LOG:-warn}"

# Starts a binary and prints the address from its "listening on http://ADDR" line.
start() {
    local name="$1"; shift
    "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    local pid=$!
    echo "$pid" >"$tmp/$name.pid"
    for _ in $(seq 1 300); do
        if addr="$(grep -o 'listening on http://[^ ]*' "$tmp/$name.out" | head -1 | sed 's#listening on http://##')" && [ -n "$addr" ]; then
            echo "$addr"; return 0
        fi
        kill -0 "$pid" 2>/dev/null || { echo "$name exited early:" >&2; cat "$tmp/$name.err" >&2; return 1; }
        sleep 0.1
    done
    echo "$name did not start" >&2; return 1
}

cp_addr="$(start control-plane "$cp_bin" serve --listen 127.0.0.1:0 \
    --database-url "${COMPAT_DATABASE_URL:-sqlite://$tmp/tollgate.db}" --catalog "$root/catalog/example.json")"
export TOLLGATE_URL="http://$cp_addr"
edge_addr="$(start edge "$edge_bin" --listen 127.0.0.1:0 --control-plane-url "$TOLLGATE_URL" \
    --sync-key "$TOLLGATE_EDGE_SYNC_KEY")"
export TOLLGATE_EDGE_URL="http://$edge_addr"
echo "== control plane $TOLLGATE_URL, edge $TOLLGATE_EDGE_URL"
for _ in $(seq 1 100); do
    curl -fsS "$TOLLGATE_EDGE_URL/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done

status=0
echo "== Python: openfeature-sdk + openfeature-provider-ofrep (pytest)"
"$envdir/venv/bin/python" -m pytest -v -rxs -p no:cacheprovider "$here/test_python.py" || status=1
echo "== Node: @openfeature/server-sdk + @openfeature/ofrep-provider"
NODE_PATH="$envdir/npm/node_modules" node --test "$here/test_server_sdk.js" || status=1
echo "== Node: @openfeature/web-sdk + @openfeature/ofrep-web-provider (bulk, event stream)"
NODE_PATH="$envdir/npm/node_modules" node --test "$here/test_web_sdk.js" || status=1
if [ "$status" != 0 ]; then
    echo "== control plane log (stderr tail)"; tail -n 40 "$tmp/control-plane.err" || true
    echo "== edge log (tail)"; tail -n 40 "$tmp/edge.out" "$tmp/edge.err" || true
fi
exit "$status"
