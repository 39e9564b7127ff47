#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: bare Pingora
# against kavro-host with zero plugins. Unlike requests/s, the count does
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
CONNS=16
UP=127.0.0.1:18091
BARE=127.0.0.1:18092
KAVRO=127.0.0.1:18093

source bench/lib.sh
bench_workdir

fixed_upstream "$UP"
mkdir -p "$WORK/none"
wait_port "$UP"
cat > "$WORK/none.toml" <<CONF
[server]
listen = ["$KAVRO"]
threads = 1
[upstreams.app]
targets = ["$UP"]
[[routes]]
path = "/*"
proxy = "app"
CONF

# count NAME ADDR CMD...: prints "NAME requests instructions per-request".
count() {
    local name=$1 addr=$2 out=$WORK/$1.cg
    shift 2
    valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=($pid)
    for _ in $(seq 1 600); do curl -fs -o /dev/null "http://$addr/" && break; sleep 0.2; done
    wrk -t1 -c$CONNS -d3s "http://$addr/" >/dev/null
    callgrind_control -z "$pid" >/dev/null
    local n
    n=$(wrk -t1 -c$CONNS -d"${SECONDS_EACH}s" "http://$addr/" | awk '/requests in/ {print $1}')
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
} > "$WORK/counts"

echo
echo "instructions per request (user space, callgrind), ${SECONDS_EACH}s of wrk at $CONNS connections, $(date -u +%F)"
awk '
    { name[NR]=$1; req[NR]=$2; per[NR]=$4; by[$1]=$4 }
    END {
        printf "%-20s %10s %14s\n", "server", "requests", "instr/request"
        for (i = 1; i <= NR; i++) printf "%-20s %10d %14d\n", name[i], req[i], per[i]
        printf "\nkavro, zero plugins / bare pingora: %.3f (instructions; lower is better)\n", by["kavro-0-plugins"]/by["bare-pingora"]
    }' "$WORK/counts"
