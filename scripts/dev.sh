#!/usr/bin/env bash
# Starts Tollgate for development: one control plane on the embedded SQLite file under
# ./data/, loaded with the example catalog, and one edge synced to it. Prints URLs and keys.
# Ctrl-C stops both. Keys are made on the first run and kept in data/dev-keys.env.
set -euo pipefail
cd "$(dirname "$0")/.."

CP_ADDR="${TOLLGATE_LISTEN:-127.0.0.1:8080}"
EDGE_ADDR="${TOLLGATE_EDGE_LISTEN:-127.0.0.1:8081}"

cargo build --workspace --bins --quiet

mkdir -p data
if [ ! -f data/dev-keys.env ]; then
  rand() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32; }
  {
    echo "TOLLGATE_SECRET_KEY=sk_test_$(rand)"
    echo "TOLLGATE_PUBLISHABLE_KEY=pk_test_$(rand)"
    echo "TOLLGATE_LIVE_SECRET_KEY=sk_live_$(rand)"
    echo "TOLLGATE_EDGE_SYNC_KEY=esk_$(rand)"
  } > data/dev-keys.env
  chmod 600 data/dev-keys.env
fi
set -a
# shellcheck disable=SC1091
. data/dev-keys.env
set +a

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

./target/debug/control-plane serve --listen "$CP_ADDR" --catalog catalog/example.json \
  --database-url "${DATABASE_URL:-sqlite://data/tollgate.db}" &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://$CP_ADDR/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
./target/debug/edge --listen "$EDGE_ADDR" --control-plane-url "http://$CP_ADDR" --sync-key "$TOLLGATE_EDGE_SYNC_KEY" &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://$EDGE_ADDR/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

cat <<EOT

  Tollgate is running (Ctrl-C stops it).

  control plane   http://$CP_ADDR      (data: ${DATABASE_URL:-sqlite://data/tollgate.db})
  edge            http://$EDGE_ADDR

  secret key (test)       $TOLLGATE_SECRET_KEY
  publishable key (test)  $TOLLGATE_PUBLISHABLE_KEY
  secret key (live)       $TOLLGATE_LIVE_SECRET_KEY
  edge sync key           $TOLLGATE_EDGE_SYNC_KEY

  Try:  curl -u $TOLLGATE_SECRET_KEY: http://$CP_ADDR/api/v1/plans/
        curl -H "Authorization: Bearer $TOLLGATE_PUBLISHABLE_KEY" "http://$EDGE_ADDR/api/v1/entitlements/?customerId=user-123"

EOT
wait
