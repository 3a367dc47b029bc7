#!/usr/bin/env bash
# Agent benchmark (issue 3): resident memory and CPU of `fleet-agent run` at a 60 s
# interval, side by side in one run with zabbix_agentd (Debian zabbix-agent) and
# prometheus-node-exporter at their default settings; then spool append and replay
# throughput. Prints the figures and the comparison. Not a timed test.
#
# A fair comparison asks each one for a comparable amount of work, as it would be
# used (POLL seconds, default 60):
# - fleet-agent: its defaults, a report every 60 s, a look at the terminal every 10 s.
# - prometheus-node-exporter is scraped by Prometheus (default scrape_interval 1m):
#   the script GETs /metrics with curl every POLL s, the first at the start.
# - zabbix_agentd answers passive checks (a server's default item interval is 1m):
#   every POLL s the script asks it for the items that read what the agent reads
#   (host name, OS, boot time, the four version files, the distribution record, the
#   line-auth page, the reader log, the certificate, the boot-time file), with
#   zabbix_get when installed, else by speaking the same passive-check protocol
#   (ZBXD header, one TCP connection per item) from bash; Debian 12 has no
#   zabbix-get package.
# CPU is utime+stime of each process tree over the window: the machine may be busy
# with other work, per-process CPU time is not affected by that (wall-clock is).
#
#   tests/tools/bench/agent-bench.sh     # 180 s window (DURATION=600 for the issue's 10 min)
#   DURATION=600 tests/tools/bench/agent-bench.sh
#
# Needs: root (apt-get), rabbitmqctl on the local broker, a release build of the agent
# (cargo build --release -p fleet-agent) and of the tools crate's fleet-agent-bench
# (spool and probe throughput; cargo build --release -p fleet-tools --bin
# fleet-agent-bench), and the debug fleetd (cargo build -p fleetd), which consumes
# the agent's reports in a throwaway vhost so that publishing is real.
# AGENT=…, AGENT_BENCH=… and FLEETD=… name other binaries (e.g. copies, so that a rebuild on a shared
# machine does not swap them mid-run).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
DURATION="${DURATION:-180}"
SAMPLE="${SAMPLE:-5}"
POLL="${POLL:-60}"
AGENT="${AGENT:-$TARGET/release/fleet-agent}"
AGENT_BENCH="${AGENT_BENCH:-$TARGET/release/fleet-agent-bench}"
FLEETD="${FLEETD:-$TARGET/debug/fleetd}"
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
[ -x "$AGENT_BENCH" ] || (cd "$ROOT" && cargo build --release -p fleet-tools --bin fleet-agent-bench)
[ -x "$FLEETD" ] || (cd "$ROOT" && cargo build -p fleetd)
if ! command -v zabbix_agentd >/dev/null || ! command -v prometheus-node-exporter >/dev/null \
   || ! command -v curl >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q zabbix-agent prometheus-node-exporter curl >/dev/null
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

# What a Zabbix server would ask for to watch the example terminal with passive checks.
FIX="$ROOT/agent/examples/fixtures/sample-terminal"
VERSION_RE='[0-9]+\.[0-9.]+'
ZABBIX_ITEMS=(
  system.hostname system.uname system.boottime
  "vfs.file.regexp[\"$FIX/OQS-Auth/Version.info\",\"$VERSION_RE\"]"
  "vfs.file.regexp[\"$FIX/OQSComApp/Version.info\",\"$VERSION_RE\"]"
  "vfs.file.regexp[\"$FIX/OQSDistroApp/Version.info\",\"$VERSION_RE\"]"
  "vfs.file.regexp[\"$FIX/CardReader/Version.info\",\"$VERSION_RE\"]"
  "vfs.file.contents[\"$FIX/distribution.txt\"]"
  "vfs.file.regexp[\"$FIX/lineauth.html\",\"回線認証接続済み|希望しない\"]"
  "vfs.file.regexp[\"$(ls "$FIX"/reader/CaoraLog_*.log | tail -n 1)\",\"【[0-9A-Za-z]+[:：]\"]"
  "vfs.file.contents[\"$FIX/certificate.pem\"]"
  "vfs.file.contents[\"$FIX/booted_at.txt\"]"
)
zabbix_ask() { # one passive check; prints the value
  if command -v zabbix_get >/dev/null; then
    zabbix_get -s 127.0.0.1 -k "$1"
    return
  fi
  local n le
  n="$(printf '%s' "$1" | wc -c)"
  le="$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24 & 255)))"
  exec 3<>/dev/tcp/127.0.0.1/10050 || return 1
  # header "ZBXD" 0x01, data length (4 bytes LE), reserved (4 zero bytes), then the key
  printf "ZBXD\\x01${le}\\x00\\x00\\x00\\x00%s" "$1" >&3
  tail -c +14 <&3 # the answer has the same 13-byte header
  exec 3<&-
}
SCRAPES=0; SCRAPE_BYTES=0; ZABBIX_ANSWERS=0; ZABBIX_UNSUPPORTED=0
poll_others() { # one Prometheus scrape, one round of Zabbix passive checks
  local b item v
  b="$(curl -fsS http://127.0.0.1:9100/metrics | wc -c)" && [ "$b" -gt 0 ] \
    && SCRAPES=$((SCRAPES + 1)) && SCRAPE_BYTES=$((SCRAPE_BYTES + b))
  for item in "${ZABBIX_ITEMS[@]}"; do
    v="$(zabbix_ask "$item" 2>/dev/null || true)"
    ZABBIX_ANSWERS=$((ZABBIX_ANSWERS + 1))
    case "$v" in ZBX_NOTSUPPORTED*|"") ZABBIX_UNSUPPORTED=$((ZABBIX_UNSUPPORTED + 1))
      echo "zabbix_agentd: $item: ${v:-no answer}" >&2 ;; esac
  done
}

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
echo "observing for ${DURATION}s (sample every ${SAMPLE}s, node-exporter and zabbix_agentd asked every ${POLL}s)…" >&2
END=$(( $(date +%s) + DURATION ))
NEXT_POLL="$(date +%s)"
while [ "$(date +%s)" -lt "$END" ]; do
  if [ "$(date +%s)" -ge "$NEXT_POLL" ]; then
    poll_others
    NEXT_POLL=$((NEXT_POLL + POLL))
  fi
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
echo "== resident memory and CPU over ${ELAPSED%.*} s (fleet-agent: defaults; others at defaults, asked every ${POLL} s) =="
for n in "${NAMES[@]}"; do echo "$n: $(tree "${PID[$n]}" | xargs -I{} sh -c 'echo -n "$(cat /proc/{}/comm 2>/dev/null)({}) "')"; done
# CPU time is counted in clock ticks (1/CLK_TCK s, 10 ms): over 600 s one tick is
# 0.0017 % of a core, so the CPU seconds are printed too.
printf '%-15s %12s %12s %12s %10s %14s\n' process "RSS avg MiB" "RSS max MiB" "PSS MiB" "CPU s" "CPU % of core"
for n in "${NAMES[@]}"; do
  t1="$(ticks "${PID[$n]}")"
  cpu="$(echo "scale=4; 100 * ($t1 - ${T0[$n]}) / $TCK / $ELAPSED" | bc -l)"
  printf '%-15s %12.2f %12.2f %12.2f %10.2f %14.4f\n' "$n" \
    "$(echo "${SUMRSS[$n]} / $SAMPLES / 1024" | bc -l)" \
    "$(echo "${MAXRSS[$n]} / 1024" | bc -l)" \
    "$(echo "${PSS[$n]} / 1024" | bc -l)" \
    "$(echo "($t1 - ${T0[$n]}) / $TCK" | bc -l)" "$cpu"
  eval "CPU_${n//[-]/_}=$cpu; RSS_${n//[-]/_}=${MAXRSS[$n]}"
done
echo "fleet-agent: reports stored by fleetd during the window: $REPORTS (checks every 10 s)"
echo "node-exporter: $SCRAPES scrapes of /metrics, $((SCRAPE_BYTES / (SCRAPES > 0 ? SCRAPES : 1))) bytes each"
echo "zabbix_agentd: $ZABBIX_ANSWERS passive checks (${#ZABBIX_ITEMS[@]} items per round), $ZABBIX_UNSUPPORTED unsupported or unanswered"
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
  "$AGENT_BENCH" spool --dir "$WORK/spool-$policy" --count "$n" --fsync "$policy"
done

echo
echo "== one look at the example terminal (CPU time; the daemon looks every check_interval_secs) =="
(cd "$ROOT" && "$AGENT_BENCH" probe --config agent/examples/agent.toml --count 2000)
