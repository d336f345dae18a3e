#!/usr/bin/env bash
# Stops what scripts/up.sh started: the scheduler (running livelessons stay; the next
# scheduler start adopts or cleans them), then NATS and ClickHouse.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
pidfile=$ROOT/.antidote/scheduler.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill -TERM "$(cat "$pidfile")"
    while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.2; done
    say "scheduler stopped"
fi
rm -f "$pidfile"
deploy/local/services.sh stop
