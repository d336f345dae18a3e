#!/usr/bin/env bash
# The whole test suite, from nothing: installs what is missing (apt, pip), starts NATS and
# ClickHouse on test-only ports with state under .antidote/test/, runs formatting and lint
# checks and every test against the real services, and stops the services again (also when a
# test fails). Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

prepare_build

# Test services are separate from the ones `scripts/up.sh` runs, so testing never stops or
# pollutes a running development instance.
export ANTIDOTE_STATE_DIR=$ROOT/.antidote/test
export ANTIDOTE_NATS_PORT=${ANTIDOTE_TEST_NATS_PORT:-24222}
export ANTIDOTE_NATS_MONITOR_PORT=${ANTIDOTE_TEST_NATS_MONITOR_PORT:-28222}
export ANTIDOTE_CLICKHOUSE_HTTP_PORT=${ANTIDOTE_TEST_CLICKHOUSE_HTTP_PORT:-28123}
export ANTIDOTE_CLICKHOUSE_TCP_PORT=${ANTIDOTE_TEST_CLICKHOUSE_TCP_PORT:-29000}
services=$ROOT/deploy/local/services.sh

say "installing test dependencies"
"$services" install
eval "$("$services" env)"
if ! "$ANTIDOTE_VENV/bin/python" -c 'import chdb' 2>/dev/null; then
    "$services" pip "chdb-core>=26"
fi
# The API fuzz test (OpenAPI document → schemathesis) and the browser tests.
[ -x "$ANTIDOTE_VENV/bin/schemathesis" ] || "$services" pip "schemathesis>=4,<5"
apt_get chromium chromium-driver
ensure_web_modules

say "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

say "building"
cargo build --workspace --all-targets --locked

say "starting services"
trap '"$services" stop' EXIT
"$services" start

say "running tests"
cargo test --workspace --locked "$@"
