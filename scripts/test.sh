#!/usr/bin/env bash
# Runs every test: unit, property, end-to-end (real RabbitMQ, SQLite, PostgreSQL) and
# page tests in a real browser.
#
# Tests named serial_* stop the whole broker (`rabbitmqctl stop_app`), which would
# break every other test running beside them, so they run alone first; then the
# rest runs in parallel, and its summary is the last thing printed.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rabbitmq
ensure_postgres
ensure_chromium
ensure_prometheus_tools
ensure_nextest
set +e
cargo nextest run --workspace --no-fail-fast -E 'test(/^serial_/)' "$@"
serial=$?
ensure_rabbitmq
cargo nextest run --workspace --no-fail-fast -E 'not test(/^serial_/)' "$@"
rest=$?
exit $(( serial != 0 ? serial : rest ))
