#!/usr/bin/env bash
# Brings Antidote up on this machine: installs what is missing, starts NATS and ClickHouse
# on the project's ports (state under .antidote/), builds the `antidote` binary, creates the
# ClickHouse schema, validates the bundled curriculum and starts the scheduler and ingest
# roles. scripts/down.sh stops it all again.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

prepare_build

say "starting services"
deploy/local/services.sh start
eval "$(deploy/local/services.sh env)"

say "building antidote"
cargo build --release --locked -p antidote-platform --bin antidote
# A copy of its own, so another checkout sharing the build cache cannot replace it.
mkdir -p "$ROOT/.antidote/bin"
install -m 755 "${CARGO_TARGET_DIR:-$ROOT/target}/release/antidote" "$ROOT/.antidote/bin/antidote"
antidote=$ROOT/.antidote/bin/antidote

say "migrating ClickHouse"
"$antidote" migrate

say "validating the bundled curriculum"
"$antidote" validate "$ROOT/curriculum"

export ANTIDOTE_CURRICULUM=${ANTIDOTE_CURRICULUM:-$ROOT/curriculum}
export ANTIDOTE_LOCAL_STATE_DIR=${ANTIDOTE_LOCAL_STATE_DIR:-$ROOT/.antidote/local}

# start_role ROLE: (re)starts `antidote ROLE` in the background, pid and log under .antidote/.
start_role() {
    local role=$1 pidfile=$ROOT/.antidote/$1.pid
    say "starting the $role"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        kill -TERM "$(cat "$pidfile")"
        while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.2; done
    fi
    setsid "$antidote" "$role" >>"$ROOT/.antidote/$role.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    sleep 1
    kill -0 "$(cat "$pidfile")" 2>/dev/null ||
        die "the $role exited at once; see $ROOT/.antidote/$role.log"
}
start_role scheduler
start_role ingest

# One file an operator sources to talk to this instance with the same settings.
cat >"$ROOT/.antidote/env" <<ENV
export ANTIDOTE_NATS_URL=$ANTIDOTE_NATS_URL
export ANTIDOTE_CLICKHOUSE_URL=$ANTIDOTE_CLICKHOUSE_URL
export ANTIDOTE_CURRICULUM=$ANTIDOTE_CURRICULUM
export PATH=$ROOT/.antidote/bin:\$PATH
ENV

cat <<MSG

Antidote is up on this machine:
  NATS (JetStream)  $ANTIDOTE_NATS_URL
  ClickHouse        $ANTIDOTE_CLICKHOUSE_URL  (database antidote)
  scheduler         pid $(cat "$ROOT/.antidote/scheduler.pid"), log .antidote/scheduler.log, local backend
  ingest            pid $(cat "$ROOT/.antidote/ingest.pid"), log .antidote/ingest.log (events into ClickHouse)
  curriculum        $ANTIDOTE_CURRICULUM
The web UI (http://127.0.0.1:8080) arrives with the API issue; until then, as an operator:
  source .antidote/env            # puts antidote on PATH, with this instance's settings
  antidote lesson catalog         # what can run here
  antidote lesson start SLUG      # e.g. ospf-triangle: three FRR routers and a host
  antidote lesson list / show ID / stop ID
Stop the roles and services with scripts/down.sh (running livelessons stay until stopped).
MSG
