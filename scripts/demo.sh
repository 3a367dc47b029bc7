#!/usr/bin/env bash
# The demo: RabbitMQ, fleetd on an SQLite file, a handful of simulated clinics, and a
# URL with a token to log in. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rabbitmq

log "building (first time takes a few minutes)"
# fleet-sim comes from the tools crate (tests/tools), not from the agent.
cargo build --quiet -p fleetd -p fleet-agent -p fleet-tools --bin fleetd --bin fleet-agent --bin fleet-sim
bin="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug"

mkdir -p .demo
cd .demo
export FLEET_HTTP_ADDR="${FLEET_HTTP_ADDR:-127.0.0.1:8080}"
log "starting fleetd serve on $FLEET_HTTP_ADDR (database .demo/fleet.db, log .demo/fleetd.log)"
"$bin/fleetd" serve >fleetd.log 2>&1 &
fleetd_pid=$!
trap 'kill $fleetd_pid 2>/dev/null; wait $fleetd_pid 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 60); do
  curl -fsS "http://$FLEET_HTTP_ADDR/readyz" >/dev/null 2>&1 && break
  kill -0 $fleetd_pid 2>/dev/null || { cat fleetd.log; exit 1; }
  sleep 0.5
done

log "feeding the simulated clinics"
"$bin/fleet-sim" demo
log "starting the sample terminal's agent (agent/examples/agent.toml, log .demo/agent.log)"
(cd .. && exec "$bin/fleet-agent" run --config agent/examples/agent.toml) >agent.log 2>&1 &
agent_pid=$!
trap 'kill $agent_pid $fleetd_pid 2>/dev/null; wait $fleetd_pid 2>/dev/null' EXIT INT TERM
sleep 1

support=$("$bin/fleetd" token --role support --tenant demo --sub support-desk --ttl 12h)
osaka=$("$bin/fleetd" token --role association --prefecture 27 --sub osaka-med --ttl 12h)
cat <<MSG

  Open   http://$FLEET_HTTP_ADDR/login   and paste a token:

  support desk (tenant demo):
$support

  Osaka medical association (prefecture 27, read-only):
$osaka

  A clinic page:   http://$FLEET_HTTP_ADDR/clinics/2712345678
  The API:         curl -H "Authorization: Bearer \$TOKEN" "http://$FLEET_HTTP_ADDR/api/v1/rollout?campaign=face-library-5.1.0"
  English:         add ?lang=en to any page.

  Ctrl-C stops the demo.
MSG
wait $fleetd_pid
