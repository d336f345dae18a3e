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
        # Fresh times on our sources make cargo rebuild our crates (the third-party ones stay
        # cached), so a shared cache never serves another checkout's code.
        (cd "$ROOT" && git ls-files -z -- Cargo.toml platform telemetry feedback tests 2>/dev/null |
            xargs -0 -r touch)
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
