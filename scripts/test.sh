#!/usr/bin/env bash
# Runs every test: unit, property and end-to-end (real RabbitMQ, SQLite, PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rabbitmq
ensure_postgres
ensure_chromium
ensure_nextest
exec cargo nextest run --workspace --no-fail-fast "$@"
