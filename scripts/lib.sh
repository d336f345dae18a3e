# Shared by scripts/up.sh and scripts/test.sh; sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The Rust toolchain is the one thing we do not install.
require_cargo() {
    command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup) first"
}

# Reuse a build cache outside the clone when it can live there (CI keeps it between runs);
# an explicit CARGO_TARGET_DIR wins, and without the cache the build simply starts cold.
use_build_cache() {
    if [ -z "${CARGO_TARGET_DIR:-}" ] && mkdir -p /var/cache/antidote/target 2>/dev/null \
        && [ -w /var/cache/antidote/target ]; then
        export CARGO_TARGET_DIR=/var/cache/antidote/target
        # Cargo names this project's own artifacts the same in every checkout and judges them
        # by file times, so a build from another checkout can look newer than our sources.
        # When the cache was last used by another checkout, fresh times on our sources make
        # cargo rebuild our crates (the third-party ones stay cached), so a shared cache never
        # serves another checkout's code; the same checkout again rebuilds only what changed.
        local stamp=/var/cache/antidote/target/.last-checkout
        if [ "$(cat "$stamp" 2>/dev/null)" != "$ROOT" ]; then
            # A checkout owned by another user is still ours to read (root runs these); a
            # tree without git gets every source file touched instead.
            (cd "$ROOT" && { git -c safe.directory="$ROOT" ls-files -z -- \
                Cargo.toml platform telemetry feedback tests 2>/dev/null ||
                find Cargo.toml platform telemetry feedback tests -type f -print0; } |
                xargs -0 -r touch)
            echo "$ROOT" >"$stamp"
        fi
    fi
    say "build output in ${CARGO_TARGET_DIR:-$ROOT/target}"
}

# Everything a build needs: the toolchain check, a C compiler, the build cache.
prepare_build() {
    require_cargo
    ensure_build_tools
    use_build_cache
}

# Debian packages the build needs (a C compiler for -sys crates).
ensure_build_tools() {
    if ! command -v cc >/dev/null; then
        [ "$(id -u)" -eq 0 ] || die "need root to install a C compiler (build-essential)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential pkg-config >/dev/null
    fi
}

# apt_get PACKAGE...: installs Debian packages that are missing (needs root).
apt_get() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return
    [ "$(id -u)" -eq 0 ] || die "need root to install ${missing[*]}"
    say "apt-get install ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The web UI's front-end packages (xterm.js) from npm, into web/node_modules, as the lock
# file pins them. Skipped when node_modules already matches the lock file.
ensure_web_modules() {
    command -v npm >/dev/null || apt_get nodejs npm
    local stamp=$ROOT/web/node_modules/.package-lock.json
    if [ -f "$stamp" ] && cmp -s "$ROOT/web/package-lock.json" "$ROOT/web/.installed-lock.json" 2>/dev/null; then
        return
    fi
    say "npm ci (web/: xterm.js)"
    (cd "$ROOT/web" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
        die "npm ci failed in $ROOT/web"
    cp "$ROOT/web/package-lock.json" "$ROOT/web/.installed-lock.json"
}

# Stops `antidote up` and the per-role processes older versions of up.sh started — only if
# the pid file still names our own binary (after a reboot it may name anything), with TERM
# and, after 30 s, KILL.
stop_antidote() {
    local name pidfile pid exe i
    for name in up scheduler ingest; do
        pidfile=$ROOT/.antidote/$name.pid
        pid=$(cat "$pidfile" 2>/dev/null) || true
        # (A binary replaced since it started shows as "… (deleted)".)
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || true
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
            [ "${exe% (deleted)}" = "$ROOT/.antidote/bin/antidote" ]; then
            kill -TERM "$pid"
            for ((i = 0; i < 150; i++)); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.2
            done
            if kill -0 "$pid" 2>/dev/null; then
                say "antidote $name (pid $pid) ignored TERM for 30 s; killing it"
                kill -KILL "$pid" 2>/dev/null || true
            fi
            say "antidote $name stopped"
        fi
        rm -f "$pidfile"
    done
}
