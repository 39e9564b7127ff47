#!/usr/bin/env bash
# Per-language plugin cost: the same plugin (read request header x-in, set
# response header x-out, in package) in Rust, C, Python and TypeScript.
#   1. in process (host/examples/phase_cost.rs): per request, with a warm
#      pooled instance and with isolation = "request";
#   2. through kavro-host on loopback: requests/s with wrk, beside the host
#      with no plugin.
#   ./dev.sh bench-lang        BENCH_SECONDS=5 BENCH_CONNECTIONS=64 BENCH_ROUNDS=3 ./dev.sh bench-lang
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN="${CARGO_TARGET_DIR:?run through ./dev.sh bench-lang}/release"
WASM="$CARGO_TARGET_DIR/wasm32-wasip2/plugin"
SECONDS_EACH=${BENCH_SECONDS:-5}
CONNS=${BENCH_CONNECTIONS:-64}
source "$ROOT/bench/lib.sh"
bench_workdir

cp "$WASM/echo_header.wasm" "$WORK/rust.wasm"
sdk/c/kavro-c build bench/plugins/echo_header.c -o "$WORK/c.wasm" >/dev/null
python3 sdk/python/kavro-py build bench/plugins/echo_header.py -o "$WORK/python.wasm" >/dev/null
sdk/js/kavro-js build bench/plugins/echo_header.ts -o "$WORK/typescript.wasm" >/dev/null

LANGS=(rust c python typescript)
RUNS=${BENCH_ROUNDS:-3}
echo "in process, per request (checkout, package call, give back), $RUNS interleaved runs:" >&2
for r in $(seq "$RUNS"); do
    for l in "${LANGS[@]}"; do
        n=200000; [ "$l" = python ] || [ "$l" = typescript ] && n=20000
        KAVRO_CACHE_DIR="$WORK/cache" "$BIN/examples/phase_cost" "$WORK/$l.wasm" "$n" \
            | sed "s|^$WORK/$l.wasm|$l|" >> "$WORK/cost"
    done
done

port=18400
for l in none "${LANGS[@]}"; do
    mkdir -p "$WORK/p-$l"
    [ "$l" = none ] || cp "$WORK/$l.wasm" "$WORK/p-$l/echo.wasm"
    cat > "$WORK/$l.toml" <<CONF
[server]
listen = ["127.0.0.1:$port"]
[[routes]]
path = "/*"
respond = { body = "ok" }
CONF
    KAVRO_LOG=warn "$BIN/kavro-host" --config "$WORK/$l.toml" --plugins "$WORK/p-$l" \
        --cache-dir "$WORK/cache" >"$WORK/$l.log" 2>&1 & PIDS+=($!)
    wait_port "127.0.0.1:$port"
    out=$(curl -fsS -D - -o /dev/null -H 'x-in: hello' "http://127.0.0.1:$port/")
    [ "$l" = none ] || grep -qi '^x-out: hello' <<<"$out" || { echo "$l: the plugin did not run" >&2; exit 1; }
    wrk -t1 -c"$CONNS" -d2s -H 'x-in: hello' "http://127.0.0.1:$port/" >/dev/null 2>&1
    load "$l" "http://127.0.0.1:$port/" -H "x-in: hello" >> "$WORK/rps"
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
    port=$((port + 1))
done

echo
echo "per-language plugin cost: $(nproc) cores, $(date -u +%F); in process: the median over $RUNS runs of each run's median of 10 batch means over 200000 (Rust, C) or 20000 (Python, TS) warm requests, a tenth as many fresh; wrk ${SECONDS_EACH}s, $CONNS connections"
printf "%-12s %14s %16s %10s %10s\n" language "warm us/req" "fresh us/req" "req/s" "vs none"
none=$(awk '$1=="none" {print $2}' "$WORK/rps")
printf "%-12s %14s %16s %10.0f %9.2fx\n" none - - "$none" 1
for l in "${LANGS[@]}"; do
    warm=$(awk -v l="$l" '$1==l && /Pooled/ {print $(NF-3)}' "$WORK/cost" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    fresh=$(awk -v l="$l" '$1==l && /Request/ {print $(NF-3)}' "$WORK/cost" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    rps=$(awk -v l="$l" '$1==l {print $2}' "$WORK/rps")
    printf "%-12s %14s %16s %10.0f %9.2fx\n" "$l" "$warm" "$fresh" "$rps" "$(awk -v a="$rps" -v b="$none" 'BEGIN {print a/b}')"
done
echo "targets, warm: Rust and C at most 2 us, Python and TypeScript at most 50 us"
