#!/usr/bin/env bash
# Agent benchmark (issue 3): resident memory and CPU of `fleet-agent run` at a 60 s
# interval, side by side in one run with zabbix_agentd (Debian zabbix-agent) and
# prometheus-node-exporter at their default settings; then spool append and replay
# throughput. Prints the figures and the comparison. Not a timed test.
#
#   bench/agent-bench.sh                 # 180 s window (DURATION=600 for the issue's 10 min)
#   DURATION=600 bench/agent-bench.sh
#
# Needs: root (apt-get), rabbitmqctl on the local broker, a release build
# (cargo build --release -p fleet-agent) and the debug fleetd (cargo build -p fleetd),
# which consumes the agent's reports in a throwaway vhost so that publishing is real.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${DURATION:-180}"
SAMPLE="${SAMPLE:-5}"
AGENT="$ROOT/target/release/fleet-agent"
FLEETD="${FLEETD:-$ROOT/target/debug/fleetd}"
WORK="$(mktemp -d /tmp/fleet-agent-bench.XXXXXX)"
VHOST="fleet-agent-bench-$$"
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$AGENT" ] || (cd "$ROOT" && cargo build --release -p fleet-agent --bin fleet-agent)
[ -x "$FLEETD" ] || (cd "$ROOT" && cargo build -p fleetd)
if ! command -v zabbix_agentd >/dev/null || ! command -v prometheus-node-exporter >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q zabbix-agent prometheus-node-exporter >/dev/null
fi

# The service, in its own vhost and SQLite file, declares the contract's topology.
rabbitmqctl -q add_vhost "$VHOST"
rabbitmqctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*'
(cd "$WORK" && FLEET_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$VHOST" \
   FLEET_DATABASE_URL="sqlite://$WORK/fleet.db" FLEET_HTTP_ADDR=127.0.0.1:0 \
   RUST_LOG=warn exec "$FLEETD" serve >"$WORK/fleetd.log" 2>&1) &
PIDS+=($!)
sleep 5

# The agent: the example terminal (fixtures), 60 s interval, 10 s checks (defaults),
# spool with fsync always (default), publishing to the vhost above.
sed -e "s|^amqp_url = .*|amqp_url = \"amqp://guest:guest@127.0.0.1:5672/$VHOST${AMQP_QUERY:-}\"|" \
    -e "s|^state_dir = .*|state_dir = \"$WORK/agent-state\"|" \
    "$ROOT/agent/examples/agent.toml" >"$WORK/agent.toml"
# exec: $! must be the agent itself, not a subshell around it.
(cd "$ROOT" && RUST_LOG=warn exec "$AGENT" run --config "$WORK/agent.toml" >"$WORK/agent.log" 2>&1) &
AGENT_PID=$!
PIDS+=($AGENT_PID)

# zabbix_agentd forks a collector and listeners: its figure is the whole tree.
if pgrep -x zabbix_agentd >/dev/null; then
  ZABBIX_PID="$(pgrep -o -x zabbix_agentd)"
else
  mkdir -p /run/zabbix /var/log/zabbix-agent
  chown zabbix:zabbix /run/zabbix /var/log/zabbix-agent 2>/dev/null || true
  zabbix_agentd -f -c /etc/zabbix/zabbix_agentd.conf >/dev/null 2>&1 &
  ZABBIX_PID=$!
  PIDS+=($ZABBIX_PID)
fi
if pgrep -x prometheus-node >/dev/null || pgrep -f '^/usr/bin/prometheus-node-exporter' >/dev/null; then
  NODE_PID="$(pgrep -o -f '^/usr/bin/prometheus-node-exporter')"
else
  prometheus-node-exporter >/dev/null 2>&1 &
  NODE_PID=$!
  PIDS+=($NODE_PID)
fi
sleep 2

TCK="$(getconf CLK_TCK)"
tree() { # pid and its descendants
  local p="$1"; echo "$p"
  for c in $(pgrep -P "$p" 2>/dev/null); do tree "$c"; done
}
rss_kib() { # sum of VmRSS over the tree
  local sum=0 v
  for p in $(tree "$1"); do
    v="$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)"
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
pss_kib() { # sum of Pss over the tree (shared pages split fairly)
  local sum=0 v
  for p in $(tree "$1"); do
    v="$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)"
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
ticks() { # utime+stime over the tree
  local sum=0 v
  for p in $(tree "$1"); do
    v="$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)"
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

declare -A T0 MAXRSS SUMRSS PSS
NAMES=(fleet-agent zabbix_agentd node-exporter)
declare -A PID=([fleet-agent]=$AGENT_PID [zabbix_agentd]=$ZABBIX_PID [node-exporter]=$NODE_PID)
for n in "${NAMES[@]}"; do T0[$n]="$(ticks "${PID[$n]}")"; MAXRSS[$n]=0; SUMRSS[$n]=0; done
START="$(date +%s.%N)"
SAMPLES=0
echo "observing for ${DURATION}s (sample every ${SAMPLE}s)…" >&2
END=$(( $(date +%s) + DURATION ))
while [ "$(date +%s)" -lt "$END" ]; do
  for n in "${NAMES[@]}"; do
    kill -0 "${PID[$n]}" 2>/dev/null || { echo "$n (pid ${PID[$n]}) died" >&2; exit 1; }
    r="$(rss_kib "${PID[$n]}")"
    SUMRSS[$n]=$(( SUMRSS[$n] + r ))
    [ "$r" -gt "${MAXRSS[$n]}" ] && MAXRSS[$n]=$r
  done
  SAMPLES=$((SAMPLES + 1))
  sleep "$SAMPLE"
done
ELAPSED="$(echo "$(date +%s.%N) - $START" | bc -l)"
for n in "${NAMES[@]}"; do PSS[$n]="$(pss_kib "${PID[$n]}")"; done

echo "fleet-agent now: $(grep -E '^(RssAnon|RssFile|Threads)' "/proc/$AGENT_PID/status" | tr -s ' \t' ' ' | tr '\n' ' ')" \
  "threads: $(cat /proc/$AGENT_PID/task/*/comm | sort | uniq -c | tr -s ' \n' ' ')"
REPORTS="$(sqlite3 "$WORK/fleet.db" 'SELECT COUNT(*) FROM reports' 2>/dev/null || echo '?')"
echo
echo "== resident memory and CPU over ${ELAPSED%.*} s (fleet-agent interval 60 s; others at defaults) =="
for n in "${NAMES[@]}"; do echo "$n: $(tree "${PID[$n]}" | xargs -I{} sh -c 'echo -n "$(cat /proc/{}/comm 2>/dev/null)({}) "')"; done
printf '%-15s %12s %12s %12s %14s\n' process "RSS avg MiB" "RSS max MiB" "PSS MiB" "CPU % of core"
for n in "${NAMES[@]}"; do
  t1="$(ticks "${PID[$n]}")"
  cpu="$(echo "scale=4; 100 * ($t1 - ${T0[$n]}) / $TCK / $ELAPSED" | bc -l)"
  printf '%-15s %12.2f %12.2f %12.2f %14.3f\n' "$n" \
    "$(echo "${SUMRSS[$n]} / $SAMPLES / 1024" | bc -l)" \
    "$(echo "${MAXRSS[$n]} / 1024" | bc -l)" \
    "$(echo "${PSS[$n]} / 1024" | bc -l)" "$cpu"
  eval "CPU_${n//[-]/_}=$cpu; RSS_${n//[-]/_}=${MAXRSS[$n]}"
done
echo "reports stored by fleetd during the window: $REPORTS"
echo
verdict() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo yes; else echo NO; fi; }
echo "goal: fleet-agent under 10 MiB resident:        $(verdict "$RSS_fleet_agent < 10240")"
echo "goal: fleet-agent under 0.1% of one core:       $(verdict "$CPU_fleet_agent < 0.1")"
echo "goal: smaller RSS than zabbix_agentd (tree):    $(verdict "$RSS_fleet_agent < $RSS_zabbix_agentd")"
echo "goal: smaller RSS than node-exporter:           $(verdict "$RSS_fleet_agent < $RSS_node_exporter")"
echo "goal: less CPU than zabbix_agentd:              $(verdict "$CPU_fleet_agent <= $CPU_zabbix_agentd")"
echo "goal: less CPU than node-exporter:              $(verdict "$CPU_fleet_agent <= $CPU_node_exporter")"

echo
echo "== spool throughput (release build, $(df -T "$WORK" | awk 'NR==2 {print $2}') on $(df "$WORK" | awk 'NR==2 {print $1}')) =="
for policy in always interval never; do
  rm -rf "$WORK/spool-$policy"
  n=20000; [ "$policy" = always ] && n=5000
  "$AGENT" spool-bench --dir "$WORK/spool-$policy" --count "$n" --fsync "$policy"
done
