#!/usr/bin/env bash
# Kelviq compatibility suite: both published SDKs, unchanged, against real Tollgate binaries.
#
#   compat/kelviq/run.sh            # uses target/debug/control-plane and target/debug/edge
#   CONTROL_PLANE_BIN=… EDGE_BIN=… compat/kelviq/run.sh
#
# Builds nothing: build the workspace first. Installs kelviq-sdk (PyPI, 2.9.x) into a
# virtualenv and @kelviq/node-sdk (npm, 2.6.x) into an npm prefix, both in a temp dir; starts a
# control plane (SQLite in the temp dir) and an edge on random loopback ports; runs the pytest
# file and the node script; every SDK call is a named test. Exits non-zero if any fails.
#
# Env: KELVIQ_PY_SDK (default "kelviq-sdk==2.9.*"), KELVIQ_NODE_SDK (default
# "@kelviq/node-sdk@2.6"), PYTHON (python3), COMPAT_DATABASE_URL (default: SQLite in the temp
# dir; an empty postgres://… database runs the suite on PostgreSQL), KEEP_TMP=1 keeps the temp dir and logs,
# KELVIQ_ENV_DIR=DIR installs the SDKs there once and reuses them.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cp_bin="${CONTROL_PLANE_BIN:-$root/target/debug/control-plane}"
edge_bin="${EDGE_BIN:-$root/target/debug/edge}"
python="${PYTHON:-python3}"
py_sdk="${KELVIQ_PY_SDK:-kelviq-sdk==2.9.*}"
node_sdk="${KELVIQ_NODE_SDK:-@kelviq/node-sdk@2.6}"

for b in "$cp_bin" "$edge_bin"; do
    [ -x "$b" ] || { echo "missing binary $b: build the workspace first (cargo build --workspace)" >&2; exit 2; }
done
command -v node >/dev/null || { echo "node is not installed" >&2; exit 2; }
command -v npm >/dev/null || { echo "npm is not installed" >&2; exit 2; }

tmp="$(mktemp -d -t tollgate-kelviq-XXXXXX)"
cleanup() {
    # `start` runs in a command substitution (a subshell), so the pids live in files.
    for f in "$tmp"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# KELVIQ_ENV_DIR: reuse (or create) the virtualenv and npm prefix there instead of in $tmp.
envdir="${KELVIQ_ENV_DIR:-$tmp}"
if [ ! -x "$envdir/venv/bin/python" ] || [ ! -d "$envdir/npm/node_modules/@kelviq/node-sdk" ]; then
    echo "== installing the SDKs into $envdir"
    "$python" -m venv "$envdir/venv"
    "$envdir/venv/bin/pip" install --quiet --disable-pip-version-check "$py_sdk" pytest
    npm install --silent --no-audit --no-fund --prefix "$envdir/npm" "$node_sdk" >/dev/null
fi
"$envdir/venv/bin/python" -c 'import importlib.metadata as m; print("kelviq-sdk", m.version("kelviq-sdk"))'
node -e "console.log('@kelviq/node-sdk', require('$envdir/npm/node_modules/@kelviq/node-sdk/package.json').version)"

key() { # a random key body, as the binaries generate them
    head -c 200 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9' | head -c 32
}
export TOLLGATE_SECRET_KEY="sk_test_$(key)"
export TOLLGATE_PUBLISHABLE_KEY="pk_test_$(key)"
export TOLLGATE_LIVE_SECRET_KEY="sk_live_$(key)"
export TOLLGATE_EDGE_SYNC_KEY="esk_$(key)"
export TOLLGATE_ALLOW_PRIVATE_WEBHOOK_URLS=true   # the webhook receiver is on loopback
export TOLLGATE_WEBHOOK_RETRY_BASE_MS=200
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
echo "== Python SDK (pytest)"
"$envdir/venv/bin/python" -m pytest -v -rxs -p no:cacheprovider "$here/test_python_sdk.py" || status=1
echo "== Node SDK"
NODE_PATH="$envdir/npm/node_modules" node "$here/test_node_sdk.js" || status=1
if [ "$status" != 0 ]; then
    echo "== control plane log (stderr tail)"; tail -n 40 "$tmp/control-plane.err" || true
fi
exit "$status"
