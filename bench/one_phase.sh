#!/usr/bin/env bash
# A present-only plugin on a proxied route, pooled and with an instance per
# request, against the same transform with a package phase beside it: wrk
# at 1, 2, 4 and 16 connections, a plain request, then SIGTERM, timed.
# Every run must answer at every level and stop on SIGTERM.
# Loopback only; each load step is bounded by BENCH_SECONDS.
#
#   ./dev.sh bench-phase            (builds what it needs first)
#   BENCH_SECONDS=3 BENCH_RUNS=10 ./dev.sh bench-phase
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN="${CARGO_TARGET_DIR:?run through ./dev.sh bench-phase}/release"
WASM="$CARGO_TARGET_DIR/wasm32-wasip2/plugin"
SECONDS_EACH=${BENCH_SECONDS:-3}
RUNS=${BENCH_RUNS:-10}
UP=127.0.0.1:18181
KAVRO=127.0.0.1:18182
ADMIN=127.0.0.1:18183

source "$ROOT/bench/lib.sh"
bench_workdir
fixed_upstream "$UP"
wait_port "$UP"

# run PLUGIN ISOLATION: one host, the load steps, SIGTERM. Prints a line
# "PLUGIN ISOLATION rps@1 rps@2 rps@4 rps@16 plain-status stop-ms exit".
run() {
    local dir="$WORK/$1-$2" line="$1 $2" rps
    mkdir -p "$dir/plugins"
    cp "$WASM/${1//-/_}.wasm" "$dir/plugins/shout.wasm"
    cat > "$dir/kavro.toml" <<CONF
[upstreams.app]
targets = ["$UP"]

[[routes]]
path = "/*"
proxy = "app"

[[plugins]]
name = "shout"
isolation = "$2"
CONF
    "$BIN/kavro-host" --config "$dir/kavro.toml" --plugins "$dir/plugins" \
        --cache-dir "$WORK/cache" --listen "$KAVRO" --admin "$ADMIN" 2>"$dir/log" &
    local pid=$!
    wait_port "$KAVRO"
    for CONNS in 1 2 4 16; do
        rps=$(load "c$CONNS" "http://$KAVRO/" | awk '{print $2}')
        line="$line ${rps:-0}"
    done
    line="$line $(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://$KAVRO/" || echo 000)"
    local t0 status=0
    t0=$(date +%s%N)
    kill -TERM "$pid"
    wait "$pid" || status=$?
    echo "$line $(( ($(date +%s%N) - t0) / 1000000 )) $status"
}

echo "plugin isolation rps@1 rps@2 rps@4 rps@16 plain stop_ms exit"
for i in $(seq 1 "$RUNS"); do
    for iso in request pooled; do
        run only-present "$iso"
        run present-package "$iso"
    done
done | tee "$WORK/runs"
echo
echo "medians of requests/s at 16 connections:"
for p in only-present present-package; do
    for iso in request pooled; do
        printf '%s %s ' "$p" "$iso"
        grep "^$p $iso " "$WORK/runs" | awk '{print $6}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
    done
done
