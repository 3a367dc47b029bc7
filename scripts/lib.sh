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
