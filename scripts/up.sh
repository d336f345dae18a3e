#!/usr/bin/env bash
# Brings Antidote up on this machine and prints its URL: installs what is missing (Debian
# packages, the NATS server, xterm.js from npm), builds the `antidote` binary and starts
# `antidote up` in the background — which starts NATS and ClickHouse on the project's ports
# (state under .antidote/), creates the ClickHouse schema, loads the bundled curriculum and
# runs the api, scheduler and ingest roles with the local backend in one process.
# scripts/down.sh stops it all again. Log: .antidote/up.log.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

prepare_build
say "installing what the services and lab endpoints need"
deploy/local/services.sh install
ensure_web_modules

say "building antidote"
cargo build --release --locked -p antidote-platform --bin antidote
# A copy of its own, so another checkout sharing the build cache cannot replace it.
mkdir -p "$ROOT/.antidote/bin"
install -m 755 "${CARGO_TARGET_DIR:-$ROOT/target}/release/antidote" "$ROOT/.antidote/bin/antidote.new"
mv -f "$ROOT/.antidote/bin/antidote.new" "$ROOT/.antidote/bin/antidote"
antidote=$ROOT/.antidote/bin/antidote

say "validating the bundled curriculum"
"$antidote" validate "$ROOT/curriculum"

stop_antidote   # a previous `antidote up` (or the older per-role processes)

# URLs of the project's own services (e.g. from a sourced .antidote/env) are not "somebody
# else's services": antidote up starts ours when they are down.
[ "${ANTIDOTE_NATS_URL:-}" = "nats://127.0.0.1:${ANTIDOTE_NATS_PORT:-14222}" ] && unset ANTIDOTE_NATS_URL
[ "${ANTIDOTE_CLICKHOUSE_URL:-}" = "http://127.0.0.1:${ANTIDOTE_CLICKHOUSE_HTTP_PORT:-18123}" ] &&
    unset ANTIDOTE_CLICKHOUSE_URL
external_nats=${ANTIDOTE_NATS_URL:-}
external_clickhouse=${ANTIDOTE_CLICKHOUSE_URL:-}

export ANTIDOTE_CURRICULUM=${ANTIDOTE_CURRICULUM:-$ROOT/curriculum}
export ANTIDOTE_LOCAL_STATE_DIR=${ANTIDOTE_LOCAL_STATE_DIR:-$ROOT/.antidote/local}
export ANTIDOTE_WEB_MODULES=$ROOT/web/node_modules
export ANTIDOTE_SERVICES_SCRIPT=$ROOT/deploy/local/services.sh
log=$ROOT/.antidote/up.log
say "starting antidote up (log $log)"
: >"$log"
setsid "$antidote" up >>"$log" 2>&1 </dev/null &
echo $! >"$ROOT/.antidote/up.pid"

# `antidote up` prints one line with the URL once every role runs.
url=
for _ in $(seq 1 600); do
    url=$(grep -o 'Antidote is up: http://[^ ]*' "$log" | head -n1 | sed 's/Antidote is up: //') || true
    [ -n "$url" ] && break
    if ! kill -0 "$(cat "$ROOT/.antidote/up.pid")" 2>/dev/null; then
        tail -n 20 "$log" >&2
        die "antidote up exited during start-up; see $log"
    fi
    sleep 0.2
done
[ -n "$url" ] || { tail -n 20 "$log" >&2; die "antidote up did not come up within 120 s; see $log"; }

eval "$(deploy/local/services.sh env)"
# The services this instance really uses: the ones given, or the project's own.
ANTIDOTE_NATS_URL=${external_nats:-$ANTIDOTE_NATS_URL}
ANTIDOTE_CLICKHOUSE_URL=${external_clickhouse:-$ANTIDOTE_CLICKHOUSE_URL}
# One file an operator sources to talk to this instance with the same settings.
cat >"$ROOT/.antidote/env" <<ENV
export ANTIDOTE_NATS_URL=$ANTIDOTE_NATS_URL
export ANTIDOTE_CLICKHOUSE_URL=$ANTIDOTE_CLICKHOUSE_URL
export ANTIDOTE_CURRICULUM=$ANTIDOTE_CURRICULUM
export PATH=$ROOT/.antidote/bin:\$PATH
ENV

# The maintainers' pages: open only with tokens (names listed, secrets never printed).
if [ -n "${ANTIDOTE_MAINTAINER_TOKENS:-}" ]; then
    names=$(printf '%s' "$ANTIDOTE_MAINTAINER_TOKENS" | tr ',' '\n' |
        sed -n 's/^ *\([A-Za-z0-9._-]\{1,\}\):..*/\1/p; t; /[^ ]/s/.*/maintainer/p' | sort -u | paste -sd, -)
    triage="${url}triage  (sign in with a maintainer token: ${names})"
else
    triage="closed (start with ANTIDOTE_MAINTAINER_TOKENS=name:secret to open ${url}triage)"
fi

cat <<MSG

Antidote is up: $url
  web UI and API    $url  (OpenAPI: ${url}api/v1/openapi.json)
  NATS (JetStream)  $ANTIDOTE_NATS_URL
  ClickHouse        $ANTIDOTE_CLICKHOUSE_URL  (database antidote)
  roles             api, scheduler (local backend), ingest — pid $(cat "$ROOT/.antidote/up.pid"), log .antidote/up.log
  curriculum        $ANTIDOTE_CURRICULUM
  triage            $triage
As an operator:  source .antidote/env; antidote lesson list | show ID | stop ID
Stop it all with scripts/down.sh (running livelessons stay and are adopted by the next start).
MSG
