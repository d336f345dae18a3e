#!/usr/bin/env bash
# Stops what scripts/up.sh started: the scheduler and ingest roles (running livelessons stay;
# the next scheduler start keeps or cleans them; undelivered events wait in JetStream), then
# NATS and ClickHouse.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
for role in scheduler ingest; do
    pidfile=$ROOT/.antidote/$role.pid
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        kill -TERM "$(cat "$pidfile")"
        while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.2; done
        say "$role stopped"
    fi
    rm -f "$pidfile"
done
deploy/local/services.sh stop
