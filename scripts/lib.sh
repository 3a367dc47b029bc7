# Shared by demo.sh, test.sh and .ci/run: make sure the services the product needs
# are installed and running on this machine. Installs with apt-get where missing.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "need root to apt-get install $*; install it and run again"; exit 1
  fi
  if [ -z "${FLEET_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    export FLEET_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_rabbitmq() {
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    log "installing RabbitMQ"
    apt_install rabbitmq-server
  fi
  if ! rabbitmqctl -q status >/dev/null 2>&1; then
    log "starting RabbitMQ"
    rabbitmq-server -detached >/dev/null 2>&1 || true
  fi
  # Wait until it accepts work (up to ~60 s).
  for _ in $(seq 1 60); do
    rabbitmqctl -q await_startup >/dev/null 2>&1 && return 0
    sleep 1
  done
  log "RabbitMQ did not start"; return 1
}

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "installing PostgreSQL"
    apt_install postgresql
  fi
  if ! pg_isready -h 127.0.0.1 -q 2>/dev/null; then
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -q 2>/dev/null && return 0
    sleep 1
  done
  log "PostgreSQL did not start"; return 1
}

ensure_chromium() {
  if ! command -v chromium >/dev/null 2>&1; then
    log "installing Chromium (the page tests drive a real browser)"
    apt_install chromium fonts-noto-cjk
  fi
}

ensure_nextest() {
  if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest"
    cargo install --locked cargo-nextest >/dev/null
  fi
}

# A Debian package's service, stopped and kept from starting at boot. Where systemd
# runs, `systemctl disable --now`; elsewhere (containers) the SysV script, if the
# package's start got past policy-rc.d.
stop_package_service() {
  local svc=$1
  if [ -d /run/systemd/system ]; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$svc" ]; then
    service "$svc" stop >/dev/null 2>&1 || "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
}

# promtool (Debian `prometheus`), alertmanager and amtool (`prometheus-alertmanager`):
# the deploy rule tests and the Alertmanager test helper run them. Here they are
# tools, not services: the packages start Prometheus on :9090 and Alertmanager on
# :9093 where policy allows (a container's policy-rc.d usually denies it), which
# would clash with a developer's own, so the ones installed here are stopped and
# disabled. Without recommends: no node exporter on :9100 either.
ensure_prometheus_tools() {
  local missing=()
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  if ! command -v amtool >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then
    missing+=(prometheus-alertmanager)
  fi
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing ${missing[*]} (promtool, amtool and Alertmanager for the deploy tests)"
  apt_install --no-install-recommends "${missing[@]}"
  local pkg
  for pkg in "${missing[@]}"; do
    stop_package_service "$pkg"
  done
}
