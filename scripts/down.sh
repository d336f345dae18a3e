#!/usr/bin/env bash
# Stops what scripts/up.sh started: `antidote up` (running livelessons stay; the next start
# keeps or cleans them; undelivered events wait in JetStream), then NATS and ClickHouse.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
stop_antidote
deploy/local/services.sh stop
