#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: bare Pingora
# against kavro-host with zero plugins, then the benchmark's header work
# natively in Pingora against the same work in a Rust plugin under Kavro
# (bench/plugins/header-work), and headers + access-log with post in
# batches against the same with each completion alone (post_batch = 1).
# Unlike requests/s, the count does
# not move with what else the machine runs, so a change of a few hundred
# instructions a request shows. User space only: the kernel's share (the
# sockets) is the same for both.
#
#   ./dev.sh bench-instr        (INSTR_SECONDS of load each, default 10)
# Each server runs alone under valgrind on one worker thread, warmed, then
# its counters are zeroed, loaded, and dumped.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:?run through ./dev.sh bench-instr}/release"
SECONDS_EACH=${INSTR_SECONDS:-10}
# 8: kavro under valgrind can reserve about 12 instance slots, and each
# request in flight holds one.
CONNS=8
UP=127.0.0.1:18091
BARE=127.0.0.1:18092
KAVRO=127.0.0.1:18093
BARE_HW=127.0.0.1:18097
KAVRO_HW=127.0.0.1:18098
KAVRO_TWO=127.0.0.1:18099
KAVRO_TWO_ALONE=127.0.0.1:18100
KAVRO_RAW=127.0.0.1:18101
WASM="$CARGO_TARGET_DIR/wasm32-wasip2/plugin"

source bench/lib.sh
bench_workdir

fixed_upstream "$UP"
mkdir -p "$WORK/none" "$WORK/hw" "$WORK/two"
cp "$WASM/header_work.wasm" "$WORK/hw/"
headers_and_access_log "$WORK/two"
wait_port "$UP"
kavro_config() {
    cat <<CONF
[server]
listen = ["$1"]
threads = 1
${2:-}
[upstreams.app]
targets = ["$UP"]
[[routes]]
path = "/*"
proxy = "app"
${3:-}
CONF
}
kavro_config "$KAVRO" > "$WORK/none.toml"
kavro_config "$KAVRO_HW" > "$WORK/hw.toml"
kavro_config "$KAVRO_TWO" > "$WORK/two.toml"
kavro_config "$KAVRO_TWO_ALONE" "post_batch = 1" > "$WORK/two-alone.toml"
# What deciding on compression costs a response (the upstream's 1 KiB of
# text/plain is compressible; wrk asks for no coding).
kavro_config "$KAVRO_RAW" "" "compress = false" > "$WORK/raw.toml"

# count NAME ADDR CMD...: prints "NAME requests instructions per-request".
count() {
    local name=$1 addr=$2 out=$WORK/$1.cg
    shift 2
    valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=($pid)
    for _ in $(seq 1 600); do curl -fs -o /dev/null "http://$addr/" && break; sleep 0.2; done
    wrk -t1 -c$CONNS -d3s -H "x-user: alice" "http://$addr/" >/dev/null
    callgrind_control -z "$pid" >/dev/null
    local report n
    report=$(wrk -t1 -c$CONNS -d"${SECONDS_EACH}s" -H "x-user: alice" "http://$addr/")
    n=$(awk '/requests in/ {print $1}' <<<"$report")
    if grep -q "Non-2xx" <<<"$report"; then
        echo "$name answered errors under load:" >&2
        echo "$report" >&2
        exit 1
    fi
    callgrind_control -d "$pid" >/dev/null
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    local total
    total=$(awk '/^summary:/ {print $2}' "$out.1")
    echo "$name $n $total $((total / n))"
}

{
    count bare-pingora "$BARE" "$BIN/bare-pingora" --listen "$BARE" --upstream "$UP" --threads 1 --read-timeout-ms 30000
    count kavro-0-plugins "$KAVRO" "$BIN/kavro-host" --config "$WORK/none.toml" --plugins "$WORK/none"
    count kavro-0-plugins-compress-off "$KAVRO_RAW" "$BIN/kavro-host" --config "$WORK/raw.toml" --plugins "$WORK/none"
    count pingora-native-header-work "$BARE_HW" "$BIN/bare-pingora" --listen "$BARE_HW" --upstream "$UP" \
        --threads 1 --read-timeout-ms 30000 --header-work
    # valgrind cannot reserve the address space of a thousand instance slots.
    KAVRO_INSTANCE_SLOTS=12 count kavro-plugin-header-work "$KAVRO_HW" "$BIN/kavro-host" \
        --config "$WORK/hw.toml" --plugins "$WORK/hw"
    KAVRO_INSTANCE_SLOTS=12 count kavro-headers+access-log "$KAVRO_TWO" "$BIN/kavro-host" \
        --config "$WORK/two.toml" --plugins "$WORK/two"
    KAVRO_INSTANCE_SLOTS=12 count kavro-headers+access-log-alone "$KAVRO_TWO_ALONE" "$BIN/kavro-host" \
        --config "$WORK/two-alone.toml" --plugins "$WORK/two"
} > "$WORK/counts"

echo
echo "instructions per request (user space, callgrind), ${SECONDS_EACH}s of wrk at $CONNS connections, $(date -u +%F)"
awk '
    { name[NR]=$1; req[NR]=$2; per[NR]=$4; by[$1]=$4 }
    END {
        printf "%-32s %10s %14s\n", "server", "requests", "instr/request"
        for (i = 1; i <= NR; i++) printf "%-32s %10d %14d\n", name[i], req[i], per[i]
        printf "\nkavro, zero plugins / bare pingora:               %.3f (instructions; lower is better)\n", by["kavro-0-plugins"]/by["bare-pingora"]
        printf "header work, kavro plugin / pingora native:       %.3f\n", by["kavro-plugin-header-work"]/by["pingora-native-header-work"]
        printf "header work plugin over zero plugins:             %d instructions\n", by["kavro-plugin-header-work"]-by["kavro-0-plugins"]
        printf "headers+access-log over zero plugins, batched:    %d instructions\n", by["kavro-headers+access-log"]-by["kavro-0-plugins"]
        printf "the same, each completion alone (post_batch = 1): %d instructions\n", by["kavro-headers+access-log-alone"]-by["kavro-0-plugins"]
        printf "deciding on compression (zero plugins):           %d instructions\n", by["kavro-0-plugins"]-by["kavro-0-plugins-compress-off"]
    }' "$WORK/counts"
