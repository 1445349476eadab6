#!/usr/bin/env bash
# The JS and React clients' tests, each against a real edge fed by a real control plane that
# the tests start (target/debug binaries, or TOLLGATE_BIN_DIR's: build the workspace first).
#   clients/js:    node's test runner
#   clients/react: vitest (jsdom)
# Dependencies come from each package's package-lock.json (npm ci, into its node_modules).
# A missing node or npm fails in CI (CI set) and skips loudly elsewhere.
set -euo pipefail
cd "$(dirname "$0")"
for p in node npm; do
    if ! command -v "$p" >/dev/null; then
        if [ -n "${CI:-}" ]; then echo "clients: $p is not installed" >&2; exit 2; fi
        echo "SKIPPED clients/js and clients/react: $p is not installed (CI would fail here)" >&2
        exit 0
    fi
done
echo "== clients/js (node --test)"
(cd js && npm ci --silent --no-audit --no-fund && npm test)
echo "== clients/react (vitest)"
(cd react && npm ci --silent --no-audit --no-fund && npm test)
