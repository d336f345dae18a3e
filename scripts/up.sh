#!/usr/bin/env bash
# Brings Antidote up on this machine: installs what is missing, starts NATS and ClickHouse
# on the project's ports (state under .antidote/), builds the `antidote` binary, creates the
# ClickHouse schema and validates the bundled curriculum. Stop the services with
# `deploy/local/services.sh stop`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

require_cargo
ensure_build_tools
use_build_cache

say "starting services"
deploy/local/services.sh start
eval "$(deploy/local/services.sh env)"

say "building antidote"
cargo build --release --locked -p antidote-platform --bin antidote
antidote=${CARGO_TARGET_DIR:-$ROOT/target}/release/antidote

say "migrating ClickHouse"
"$antidote" migrate

say "validating the bundled curriculum"
"$antidote" validate "$ROOT/curriculum"

cat <<MSG

Antidote's services are up:
  NATS (JetStream)  $ANTIDOTE_NATS_URL
  ClickHouse        $ANTIDOTE_CLICKHOUSE_URL  (database antidote)
  antidote binary   $antidote
The HTTP API and web UI (http://127.0.0.1:8080) arrive with the API issue; until then use
the binary: \`$antidote --help\`.
Stop the services with: deploy/local/services.sh stop
MSG
