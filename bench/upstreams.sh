#!/usr/bin/env bash
# Upstream scheduling with one slow target: kavro-host in front of three
# nginx targets answering a 1 KiB body, one of them BENCH_SLOW_MS (50 ms)
# late, under the same load with balance = "round_robin" and with
# balance = "least_inflight", in one run. Reports each one's median
# requests/s, p50 and p99 over the rounds (each request timed; wrk's own,
# corrected percentiles beside them), the share of requests the slow target
# got, and p99(least_inflight) / p99(round_robin) (target <= 0.5).
# Loopback only; every load run is bounded by BENCH_SECONDS.
#
#   ./dev.sh bench-upstreams   (builds what it needs first)
#   BENCH_SECONDS=10 BENCH_ROUNDS=3 BENCH_CONNECTIONS=32 ./dev.sh bench-upstreams
# The two balancers are measured in interleaved rounds, so a noisy
# neighbour skews both alike.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN="${CARGO_TARGET_DIR:?run through ./dev.sh bench-upstreams}/release"
SECONDS_EACH=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-32}
SLOW_MS=${BENCH_SLOW_MS:-50}
LUA_MODULES=/usr/lib/nginx/modules

FAST_A=127.0.0.1:18381
FAST_B=127.0.0.1:18382
SLOW=127.0.0.1:18383
KAVRO_RR=127.0.0.1:18384
KAVRO_LI=127.0.0.1:18385
ADMIN_RR=127.0.0.1:18386
ADMIN_LI=127.0.0.1:18387

source "$ROOT/bench/lib.sh"
bench_workdir

# The three targets in one nginx: two answer at once, the slow one after
# SLOW_MS (ngx.sleep does not hold the worker), the same 1 KiB body with a
# Content-Length. Each echoes the request's X-Start header (see raw.lua).
BODY=$(head -c 1024 /dev/zero | tr '\0' 'k')
SLOW_S=$(awk -v ms="$SLOW_MS" 'BEGIN { printf "%.3f", ms / 1000 }')
mkdir -p "$WORK/up"
nginx_config "$WORK/up.conf" 1 "$(cat <<CONF
    server { listen $FAST_A; location / { default_type text/plain; add_header X-Start \$http_x_start; return 200 "$BODY"; } }
    server { listen $FAST_B; location / { default_type text/plain; add_header X-Start \$http_x_start; return 200 "$BODY"; } }
    server {
        listen $SLOW;
        location / {
            default_type text/plain;
            content_by_lua_block {
                ngx.sleep($SLOW_S)
                ngx.header["Content-Length"] = 1024
                ngx.header["X-Start"] = ngx.var.http_x_start
                ngx.print("$BODY")
            }
        }
    }
CONF
)" "load_module $LUA_MODULES/ndk_http_module.so;
load_module $LUA_MODULES/ngx_http_lua_module.so;"
nginx -c "$WORK/up.conf" -p "$WORK/up" & PIDS+=($!)

# Two hosts, the same but for `balance`.
kavro_config() {
    cat <<EOF
[server]
listen = ["$1"]
[upstreams.app]
targets = ["$FAST_A", "$FAST_B", "$SLOW"]
balance = "$2"
[[routes]]
path = "/*"
proxy = "app"
EOF
}
mkdir -p "$WORK/none"
kavro_config "$KAVRO_RR" round_robin > "$WORK/rr.toml"
kavro_config "$KAVRO_LI" least_inflight > "$WORK/li.toml"
KAVRO_LOG=warn "$BIN/kavro-host" --config "$WORK/rr.toml" --plugins "$WORK/none" --admin "$ADMIN_RR" \
    >"$WORK/rr.log" 2>&1 & PIDS+=($!)
KAVRO_LOG=warn "$BIN/kavro-host" --config "$WORK/li.toml" --plugins "$WORK/none" --admin "$ADMIN_LI" \
    >"$WORK/li.log" 2>&1 & PIDS+=($!)

for a in $FAST_A $FAST_B $SLOW $KAVRO_RR $KAVRO_LI $ADMIN_RR $ADMIN_LI; do wait_port "$a"; done
for a in $FAST_A $FAST_B $SLOW $KAVRO_RR $KAVRO_LI; do
    [ "$(curl -fsS "http://$a/")" = "$BODY" ] || { echo "$a did not answer the body" >&2; exit 1; }
done

# wrk's own percentiles (lib.sh's load) are "corrected" for coordinated
# omission: for each response slower than twice the mean interval of a
# connection, wrk adds made-up samples down to that interval. With one
# target 50 ms late that fills the middle of the distribution (round
# robin's p50 reads ~17 ms where no real request took that long). So the
# same wrk run also keeps each request's own latency: request() stamps an
# X-Start header (monotonic clock, microseconds), the targets echo it, and
# response() counts the elapsed time in 10 us buckets; done() writes
# "requests p50_us p99_us" to $RAW_OUT.
cat > "$WORK/raw.lua" <<'LUA'
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end
hist = {}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function request()
    return wrk.format(nil, nil, { ["X-Start"] = tostring(now_us()) })
end
function response(status, headers, body)
    local s = tonumber(headers["X-Start"] or headers["x-start"])
    if s then
        local b = math.floor((now_us() - s) / 10)
        hist[b] = (hist[b] or 0) + 1
    end
end
function done(summary, latency, requests)
    local counts, keys, n = {}, {}, 0
    for _, t in ipairs(threads) do
        for b, c in pairs(t:get("hist")) do
            if not counts[b] then keys[#keys + 1] = b; counts[b] = 0 end
            counts[b] = counts[b] + c
            n = n + c
        end
    end
    table.sort(keys)
    local function pct(p)
        local rank, acc = math.max(1, math.ceil(p * n)), 0
        for _, b in ipairs(keys) do
            acc = acc + counts[b]
            if acc >= rank then return b * 10 + 5 end
        end
        return 0
    end
    local f = io.open(os.getenv("RAW_OUT"), "w")
    f:write(string.format("%d %d %d\n", n, pct(0.5), pct(0.99)))
    f:close()
end
LUA
export RAW_OUT=$WORK/raw.out

# counts ADMIN: "slow total failures slow_inflight inflight": the requests
# the slow target and all targets have had, all targets' failures, and the
# requests in flight to the slow target and to all, from /diagnostics.
counts() {
    curl -fsS "http://$1/diagnostics" | python3 -c '
import json, sys
t = json.load(sys.stdin)["upstreams"]["app"]["targets"]
slow = [x for x in t if x["target"] == sys.argv[1]]
print(sum(x["requests"] for x in slow), sum(x["requests"] for x in t),
      sum(x["failures"] for x in t), sum(x["inflight"] for x in slow),
      sum(x["inflight"] for x in t))' "$SLOW"
}

# measure NAME ADDR ADMIN: a load run, "NAME rps p50_us p99_us slow_share
# failures slow_inflight inflight raw_requests raw_p50_us raw_p99_us":
# wrk's percentiles, then the in-flight counts sampled halfway through,
# then the requests timed one by one and their own percentiles.
measure() {
    local before after line mid
    before=$(counts "$3")
    ( sleep "$(awk -v s="$SECONDS_EACH" 'BEGIN { print s / 2 }')"; counts "$3" > "$WORK/mid" ) &
    mid=$!; PIDS+=($mid)
    rm -f "$RAW_OUT"
    line=$(load "$1" "http://$2/" -s "$WORK/raw.lua")
    wait "$mid"; unset 'PIDS[-1]'
    after=$(counts "$3")
    echo "$line $(awk -v b="$before" -v a="$after" 'BEGIN {
        split(b, x, " "); split(a, y, " ")
        n = y[2] - x[2]; printf "%.4f %d", n ? (y[1] - x[1]) / n : 0, y[3] - x[3] }') \
$(awk '{print $4, $5}' "$WORK/mid") $(cat "$RAW_OUT" 2>/dev/null || echo "0 0 0")"
}

for a in $KAVRO_RR $KAVRO_LI; do wrk -t1 -c"$CONNS" -d2s "http://$a/" >/dev/null 2>&1; done
ROUNDS_FILE=$WORK/rounds
: > "$ROUNDS_FILE"
for r in $(seq 1 "$ROUNDS"); do
    measure round_robin "$KAVRO_RR" "$ADMIN_RR" >> "$ROUNDS_FILE"
    measure least_inflight "$KAVRO_LI" "$ADMIN_LI" >> "$ROUNDS_FILE"
    echo "round $r of $ROUNDS done" >&2
done
echo "rounds (name rps wrk_p50_us wrk_p99_us slow_share failures slow_inflight inflight timed p50_us p99_us):" >&2
cat "$ROUNDS_FILE" >&2
awk '$9 == 0 { print $1 ": no request was timed one by one" > "/dev/stderr"; bad = 1 } END { exit bad }' "$ROUNDS_FILE"

# Each column's median over the rounds, per balancer; failures summed.
median_of() { grep "^$1 " "$ROUNDS_FILE" | awk -v c="$2" '{print $c}' | sort -g | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }
RESULTS=$WORK/results
for b in round_robin least_inflight; do
    echo "$b $(median_of $b 2) $(median_of $b 10) $(median_of $b 11) $(median_of $b 3) $(median_of $b 4)" \
        "$(median_of $b 5) $(median_of $b 7) $(median_of $b 8) $(grep "^$b " "$ROUNDS_FILE" | awk '{s+=$6} END {print s}')"
done > "$RESULTS"

echo
echo "upstream scheduling: $(nproc) cores, loopback, 3 targets (one ${SLOW_MS} ms late), $CONNS connections, median of $ROUNDS interleaved ${SECONDS_EACH}s rounds, 1 KiB body, $(date -u +%F)"
echo
awk '
    { name[NR]=$1; rps[NR]=$2; p50[NR]=$3; p99[NR]=$4; w50[NR]=$5; w99[NR]=$6; share[NR]=$7; slowin[NR]=$8; allin[NR]=$9; fail[NR]=$10; p[$1]=$4; w[$1]=$6 }
    END {
        print "| balance | req/s | p50 µs | p99 µs | wrk'"'"'s p50 µs | wrk'"'"'s p99 µs | slow target'"'"'s share | in flight to it / all, mid-run |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= NR; i++)
            printf "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.1f %% | %d / %d |\n", name[i], rps[i], p50[i], p99[i], w50[i], w99[i], share[i] * 100, slowin[i], allin[i]
        printf "\np50/p99: each request timed; wrk'"'"'s: with its coordinated-omission correction\n"
        printf "p99 least_inflight / round_robin:        %.3f  (target <= 0.5)\n", p["least_inflight"] / p["round_robin"]
        printf "the same with wrk'"'"'s corrected p99:       %.3f\n", w["least_inflight"] / w["round_robin"]
        for (i = 1; i <= NR; i++) if (fail[i]) printf "%s: %d failed upstream requests\n", name[i], fail[i]
    }' "$RESULTS"
