#!/usr/bin/env bash
# Kavro's developer entry point. Installs what it needs, idempotently.
#   ./dev.sh run    build the host and the first-party plugins, serve on 127.0.0.1:8080
#   ./dev.sh test   build everything and run the whole test suite
#   ./dev.sh lint   cargo fmt --check, no import cycles in the plugin runtime and the
#                   pipeline, and clippy -D warnings over the native crates
#   ./dev.sh bench  the proxy benchmark against bare Pingora and nginx (see BENCHMARKS.md)
#   ./dev.sh bench-tls   TLS termination (handshakes, HTTP/1.1, HTTP/2) against bare Pingora and nginx
#   ./dev.sh bench-instr instructions per request, zero plugins against bare Pingora (callgrind)
#   ./dev.sh bench-swap  hot-swap latency and throughput during a swap storm
#   ./dev.sh bench-loop  well-behaved p99 while a plugin loops to its deadline
#   ./dev.sh bench-realtime WebSocket passthrough, hub fan-out and memory, fleet KV over Redis
#   ./dev.sh bench-cache cache hits against Varnish, FastCGI against nginx
#   ./dev.sh bench-lang  one plugin's cost in Rust, C, Python and TypeScript
#   ./dev.sh bench-phase a present-only plugin under rising load, then SIGTERM
#   ./dev.sh bench-upstreams least in flight against round robin with one slow target
#   ./dev.sh bench-compress static gzip against nginx gzip on; cached brotli
#   ./dev.sh plugins  only build the plugins into ./plugins/*.wasm
#   ./dev.sh plugin new|try ...  kavro-host's plugin commands: write a plugin from
#                   a template, or run one request through a built plugin
#   ./dev.sh fuzz [seconds] [target...]  run the fuzz targets (fuzz/), each for
#                   `seconds` (default 600); fails on a crash (see docs/testing.md)
set -euo pipefail
CALLER=$PWD
cd "$(dirname "$0")"
ROOT=$PWD

# One build profile (release) for run, test and bench, in a target dir kept
# outside the clone so fresh clones reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kavro/target}"
FIRST_PARTY=(headers redirects cors router access-log)
# Built with them, but not served by default (most need settings or a
# grant): copied to plugins/opt-in/.
OPT_IN=(rate-limit security-headers tmpl hide nonce)
TEST_PLUGINS_DIR=tests/plugins

need_apt() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        echo "installing: ${missing[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

setup() {
    need_apt cmake build-essential pkg-config
    rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
}

existing() {
    for p in "$@"; do [ -f "$p/Cargo.toml" ] && echo "$p"; done
}

build_plugins() {
    local args=()
    for p in $(existing "${FIRST_PARTY[@]/#/plugins/}" "${OPT_IN[@]/#/plugins/}"); do
        args+=(-p "$(basename "$p")")
    done
    cargo build --profile plugin --target wasm32-wasip2 "${args[@]}"
    mkdir -p plugins/opt-in
    for p in $(existing "${FIRST_PARTY[@]/#/plugins/}"); do
        local name; name=$(basename "$p")
        cp "$CARGO_TARGET_DIR/wasm32-wasip2/plugin/${name//-/_}.wasm" "plugins/$name.wasm"
    done
    for p in $(existing "${OPT_IN[@]/#/plugins/}"); do
        local name; name=$(basename "$p")
        cp "$CARGO_TARGET_DIR/wasm32-wasip2/plugin/${name//-/_}.wasm" "plugins/opt-in/$name.wasm"
    done
}

# Always the same set of native crates (the default members), so that run,
# test and bench share one feature resolution and never rebuild each other's
# dependencies.
build_native() {
    cargo build --release "$@"
}

# The Rust plugin of the benchmarks' header work (bench/plugins/header-work).
build_bench_plugins() {
    cargo build --profile plugin --target wasm32-wasip2 -p header-work
}

build_test_plugins() {
    local args=()
    for p in "$TEST_PLUGINS_DIR"/*/; do
        [ -f "$p/Cargo.toml" ] && args+=(-p "$(basename "$p")")
    done
    [ ${#args[@]} -gt 0 ] && cargo build --profile plugin --target wasm32-wasip2 "${args[@]}"
    return 0
}

# What the C, Python and JS SDKs build with (each SDK's build also checks).
language_toolchains() {
    need_apt clang lld wasi-libc libclang-rt-14-dev-wasm32
    command -v node >/dev/null && command -v npm >/dev/null || need_apt nodejs npm
    python3 -c "import venv, ensurepip" 2>/dev/null || need_apt python3-venv
}

# build_examples LANGUAGE EXT SDK_DIR BUILD...: every examples/LANGUAGE/NAME/
# and tests/lang/LANGUAGE/NAME/ (plugins only the tests use) into the test
# plugin folder as NAME_LANGUAGE.wasm, rebuilt only when its sources, the
# SDK or the WIT changed. The SDK's build installs its toolchain on first use.
build_examples() {
    local lang=$1 ext=$2 sdk=$3
    shift 3
    local out="$CARGO_TARGET_DIR/wasm32-wasip2/plugin"
    mkdir -p "$out"
    for dir in examples/"$lang"/*/ tests/lang/"$lang"/*/; do
        [ -d "$dir" ] || continue
        local name; name=$(basename "$dir")
        local wasm="$out/${name//-/_}_$lang.wasm"
        if [ ! -f "$wasm" ] || [ -n "$(find "$dir" "$sdk" wit -newer "$wasm" -type f -not -path '*/__pycache__/*' | head -1)" ]; then
            "$@" "$dir"*."$ext" -o "$wasm"
        fi
    done
}

build_language_examples() {
    build_examples python py sdk/python python3 sdk/python/kavro-py build
    build_examples c c sdk/c sdk/c/kavro-c build
    build_examples typescript ts sdk/js sdk/js/kavro-js build
}

# The fuzz targets (fuzz/fuzz_targets/), on stable without a sanitizer (a
# panic is the crash), in their own target dir so the instrumented build
# never evicts the normal one. Each runs on a scratch copy of its seed
# corpus, so what it finds does not dirty the clone; a crash is written to
# fuzz/artifacts/TARGET/ and fails the run.
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/kavro/fuzz-target}"
FUZZ_CORPUS_DIR="${FUZZ_CORPUS_DIR:-$HOME/.cache/kavro/fuzz-corpus}"

# fuzz SECONDS [TARGET...]: every target when none is named.
fuzz() {
    local seconds=600
    case "${1:-}" in
        ''|*[!0-9]*) ;;
        *) seconds=$1; shift ;;
    esac
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    local targets=("$@")
    [ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
    # The versions the main build uses.
    [ -f fuzz/Cargo.lock ] || cp Cargo.lock fuzz/Cargo.lock
    cargo fuzz build -s none --target-dir "$FUZZ_TARGET_DIR" --fuzz-dir fuzz
    local t failed=()
    for t in "${targets[@]}"; do
        local corpus="$FUZZ_CORPUS_DIR/$t"
        mkdir -p "$corpus"
        [ -d "fuzz/corpus/$t" ] && cp fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
        echo "fuzzing $t for ${seconds}s"
        cargo fuzz run -s none --target-dir "$FUZZ_TARGET_DIR" --fuzz-dir fuzz "$t" "$corpus" -- \
            -max_total_time="$seconds" || failed+=("$t")
    done
    if [ ${#failed[@]} -gt 0 ]; then
        echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
        return 1
    fi
}

case "${1:-}" in
    run)
        shift
        setup
        build_plugins
        build_native
        echo "serving on http://127.0.0.1:8080 (admin on 127.0.0.1:9900); Ctrl-C stops"
        # Paths in the arguments are the caller's; the first-party plugins
        # serve unless another folder is given.
        cd "$CALLER"
        case " $* " in
            *" --plugins"*) exec "$CARGO_TARGET_DIR/release/kavro-host" "$@" ;;
            *) exec "$CARGO_TARGET_DIR/release/kavro-host" --plugins "$ROOT/plugins" "$@" ;;
        esac
        ;;
    bench)
        setup
        need_apt nginx libnginx-mod-http-lua wrk curl
        build_plugins
        build_bench_plugins
        build_native
        exec bench/run.sh
        ;;
    bench-tls)
        setup
        need_apt nginx wrk curl nghttp2-client openssl
        build_native
        exec bench/tls.sh
        ;;
    bench-instr)
        setup
        need_apt nginx wrk curl valgrind
        build_bench_plugins
        build_native
        exec bench/instructions.sh
        ;;
    bench-lang)
        setup
        language_toolchains
        need_apt wrk curl
        build_test_plugins
        build_native
        # At workspace level: the host library build_native made is reused.
        cargo build --release --example phase_cost
        exec bench/languages.sh
        ;;
    bench-phase)
        setup
        need_apt nginx wrk curl
        build_test_plugins
        build_native
        exec bench/one_phase.sh
        ;;
    bench-cache)
        setup
        need_apt nginx wrk curl varnish php-fpm
        build_native
        exec bench/cache_fastcgi.sh
        ;;
    bench-compress)
        setup
        need_apt nginx wrk curl
        build_native
        exec bench/compression.sh
        ;;
    bench-upstreams)
        setup
        need_apt nginx libnginx-mod-http-lua wrk curl
        build_native
        exec bench/upstreams.sh
        ;;
    bench-swap|bench-loop|bench-realtime)
        # bench-realtime starts its own redis-server.
        [ "$1" = bench-realtime ] && need_apt redis-server
        setup
        build_plugins
        build_test_plugins
        build_native
        export KAVRO_WASM_DIR="$CARGO_TARGET_DIR/wasm32-wasip2/plugin"
        exec "$CARGO_TARGET_DIR/release/${1#bench-}_bench"
        ;;
    plugins)
        setup
        build_plugins
        ;;
    plugin)
        shift
        setup
        build_native --quiet
        cd "$CALLER"
        exec "$CARGO_TARGET_DIR/release/kavro-host" plugin "$@"
        ;;
    lint)
        setup
        rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
        rustup component list --installed | grep -q '^clippy' || rustup component add clippy
        cargo fmt --all --check
        python3 .ci/module-cycles.py
        cargo clippy --release --all-targets -- -D warnings
        ;;
    test)
        setup
        # The FastCGI and cache tests run a real php-fpm, the ACME tests a
        # real ACME test CA (pebble, with pebble-challtestsrv for DNS), the
        # cluster tests a real redis-server (each starts its own).
        need_apt php-fpm pebble redis-server
        build_plugins
        build_test_plugins
        build_native
        language_toolchains
        build_language_examples
        export KAVRO_WASM_DIR="$CARGO_TARGET_DIR/wasm32-wasip2/plugin"
        export KAVRO_PLUGINS_DIR="$ROOT/plugins"
        # The default members: the host, the end-to-end tests, the bench baseline.
        cargo test --release --no-fail-fast -- --test-threads=2
        # The plugins' own unit tests, natively.
        cargo test --release --no-fail-fast $(for p in $(existing "${FIRST_PARTY[@]/#/plugins/}" "${OPT_IN[@]/#/plugins/}"); do echo "-p $(basename "$p")"; done)
        # Each fuzz target briefly, from its seeds and what earlier runs found.
        fuzz 20
        ;;
    fuzz)
        shift
        setup
        fuzz "$@"
        ;;
    *)
        echo "usage: ./dev.sh run [kavro-host flags] | test | lint | bench | bench-tls | bench-instr | bench-cache | bench-lang | bench-phase | bench-swap | bench-loop | bench-realtime | bench-upstreams | bench-compress | plugins | plugin new|try | fuzz [seconds] [target...]" >&2
        exit 2
        ;;
esac
