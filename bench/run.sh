#!/usr/bin/env bash
# Proxy throughput and latency, all peers in one run against one upstream:
#   bare Pingora (the native limit), the same with an upstream read timeout,
#   kavro-host with zero plugins, kavro-host with headers + access-log, and
#   nginx proxy_pass; then the same header work done three ways: natively
#   in Pingora, in Lua under nginx, and in a Rust plugin under Kavro.
# Loopback only; every load run is bounded by BENCH_SECONDS.
#
#   ./dev.sh bench            (builds what it needs first)
#   BENCH_SECONDS=5 BENCH_ROUNDS=5 BENCH_CONNECTIONS=64 ./dev.sh bench
#   BENCH_BEFORE=/path/to/older/kavro-host ./dev.sh bench
#                             also measures an older build's two kavro
#                             servers in the same rounds (before and after
#                             a change)
# Servers are measured in interleaved rounds and each reports its median
# round, so a noisy neighbour skews every server alike.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN="${CARGO_TARGET_DIR:?run through ./dev.sh bench}/release"
WASM="$CARGO_TARGET_DIR/wasm32-wasip2/plugin"
SECONDS_EACH=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-5}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-0}

UP=127.0.0.1:18081
BARE=127.0.0.1:18082
KAVRO0=127.0.0.1:18083
KAVRO2=127.0.0.1:18084
NGINX=127.0.0.1:18085
BARE_T=127.0.0.1:18086
BEFORE0=127.0.0.1:18087
BEFORE2=127.0.0.1:18088
BARE_HW=127.0.0.1:18094
NGINX_LUA=127.0.0.1:18095
KAVRO_HW=127.0.0.1:18096
LUA_MODULES=/usr/lib/nginx/modules
BEFORE=${BENCH_BEFORE:-}

source "$ROOT/bench/lib.sh"
bench_workdir

fixed_upstream "$UP"
mkdir -p "$WORK/px"

# The nginx peer: proxy_pass with an upstream keep-alive pool, as Pingora pools.
NGINX_WORKERS=$THREADS; [ "$NGINX_WORKERS" = 0 ] && NGINX_WORKERS=auto
nginx_config "$WORK/px.conf" $NGINX_WORKERS "$(cat <<EOF
    upstream app { server $UP; keepalive 128; }
    server {
        listen $NGINX;
        location / {
            $NGINX_PROXY_TO_APP
        }
    }
EOF
)"
nginx -c "$WORK/px.conf" -p "$WORK/px" & PIDS+=($!)

# The header work (see bench/plugins/header-work) in Lua, as nginx users
# write it: the request header before proxying, the response headers in
# the header filter.
mkdir -p "$WORK/lua"
nginx_config "$WORK/lua.conf" $NGINX_WORKERS "$(cat <<EOF
    upstream app { server $UP; keepalive 128; }
    server {
        listen $NGINX_LUA;
        location / {
            rewrite_by_lua_block {
                if ngx.var.http_x_user then ngx.req.set_header("x-user-checked", "true") end
            }
            header_filter_by_lua_block {
                ngx.header["x-frame-options"] = "DENY"
                ngx.header["x-powered-by-plugin"] = "lua"
            }
            $NGINX_PROXY_TO_APP
        }
    }
EOF
)" "load_module $LUA_MODULES/ndk_http_module.so;
load_module $LUA_MODULES/ngx_http_lua_module.so;"
nginx -c "$WORK/lua.conf" -p "$WORK/lua" & PIDS+=($!)

"$BIN/bare-pingora" --listen "$BARE" --upstream "$UP" --threads "$THREADS" >"$WORK/bare.log" 2>&1 & PIDS+=($!)
# The same with the upstream read timeout Kavro needs for its 504 (30 s,
# Kavro's default): what that one feature costs in Pingora itself.
"$BIN/bare-pingora" --listen "$BARE_T" --upstream "$UP" --threads "$THREADS" --read-timeout-ms 30000 \
    >"$WORK/bare-t.log" 2>&1 & PIDS+=($!)
# The header work written natively in Pingora's hooks.
"$BIN/bare-pingora" --listen "$BARE_HW" --upstream "$UP" --threads "$THREADS" --read-timeout-ms 30000 \
    --header-work >"$WORK/bare-hw.log" 2>&1 & PIDS+=($!)

kavro_config() {
    cat <<EOF
[server]
listen = ["$1"]
threads = $THREADS
[upstreams.app]
targets = ["$UP"]
[[routes]]
path = "/*"
proxy = "app"
EOF
}
mkdir -p "$WORK/none" "$WORK/two" "$WORK/hw"
kavro_config "$KAVRO0" > "$WORK/none.toml"
kavro_config "$KAVRO2" > "$WORK/two.toml"
kavro_config "$KAVRO_HW" > "$WORK/hw.toml"
cp "$WASM/header_work.wasm" "$WORK/hw/"
headers_and_access_log "$WORK/two"
# Both with the default log filter, as an operator runs them.
"$BIN/kavro-host" --config "$WORK/none.toml" --plugins "$WORK/none" >"$WORK/none.log" 2>&1 & PIDS+=($!)
# The access log goes to a file, as it would in production.
"$BIN/kavro-host" --config "$WORK/two.toml" --plugins "$WORK/two" >"$WORK/two.log" 2>&1 & PIDS+=($!)
"$BIN/kavro-host" --config "$WORK/hw.toml" --plugins "$WORK/hw" >"$WORK/hw.log" 2>&1 & PIDS+=($!)

KAVROS="$KAVRO0 $KAVRO2"
NAMES="kavro-0-plugins kavro-headers+access-log"
if [ -n "$BEFORE" ]; then
    mkdir -p "$WORK/before0" "$WORK/before2"
    kavro_config "$BEFORE0" > "$WORK/before0.toml"
    kavro_config "$BEFORE2" > "$WORK/before2.toml"
    cp "$WORK/two/"* "$WORK/before2/"
    "$BEFORE" --config "$WORK/before0.toml" --plugins "$WORK/before0" >"$WORK/before0.log" 2>&1 & PIDS+=($!)
    "$BEFORE" --config "$WORK/before2.toml" --plugins "$WORK/before2" >"$WORK/before2.log" 2>&1 & PIDS+=($!)
    KAVROS="$KAVROS $BEFORE0 $BEFORE2"
    NAMES="$NAMES before-0-plugins before-headers+access-log"
fi

ALL="$NGINX $BARE $BARE_T $KAVROS $NGINX_LUA $BARE_HW $KAVRO_HW"
for a in $UP $ALL; do wait_port "$a"; done
curl -fsS "http://$KAVRO2/" -o /dev/null -D - | grep -qi '^x-served-by: kavro' \
    || { echo "the plugins did not run" >&2; exit 1; }
for a in $NGINX_LUA $BARE_HW $KAVRO_HW; do
    curl -fsS -H "x-user: alice" "http://$a/" -o /dev/null -D - | grep -qi '^x-powered-by-plugin:' \
        || { echo "the header work did not run on $a" >&2; exit 1; }
done

# Every server gets the same requests, with the x-user header the header
# work looks for.
USER_HEADER=(-H "x-user: alice")
# Warm every server (connection pools, plugin instances), then measure.
for a in $ALL; do wrk -t1 -c"$CONNS" -d2s "${USER_HEADER[@]}" "http://$a/" >/dev/null 2>&1; done
ROUNDS_FILE=$WORK/rounds
: > "$ROUNDS_FILE"
for r in $(seq 1 "$ROUNDS"); do
    load nginx "http://$NGINX/" "${USER_HEADER[@]}" >> "$ROUNDS_FILE"
    load bare-pingora "http://$BARE/" "${USER_HEADER[@]}" >> "$ROUNDS_FILE"
    load bare-pingora+read-timeout "http://$BARE_T/" "${USER_HEADER[@]}" >> "$ROUNDS_FILE"
    load kavro-0-plugins "http://$KAVRO0/" "${USER_HEADER[@]}" >> "$ROUNDS_FILE"
    load kavro-headers+access-log "http://$KAVRO2/" "${USER_HEADER[@]}" >> "$ROUNDS_FILE"
    load nginx+lua-header-work "http://$NGINX_LUA/" "${USER_HEADER[@]}" >> "$ROUNDS_FILE"
    load pingora-native-header-work "http://$BARE_HW/" "${USER_HEADER[@]}" >> "$ROUNDS_FILE"
    load kavro-plugin-header-work "http://$KAVRO_HW/" "${USER_HEADER[@]}" >> "$ROUNDS_FILE"
    if [ -n "$BEFORE" ]; then
        load before-0-plugins "http://$BEFORE0/" "${USER_HEADER[@]}" >> "$ROUNDS_FILE"
        load before-headers+access-log "http://$BEFORE2/" "${USER_HEADER[@]}" >> "$ROUNDS_FILE"
    fi
    echo "round $r of $ROUNDS done" >&2
done
# Each server's median round by requests/s.
RESULTS=$WORK/results
median_rounds "$ROUNDS_FILE" nginx bare-pingora bare-pingora+read-timeout $NAMES \
    nginx+lua-header-work pingora-native-header-work kavro-plugin-header-work > "$RESULTS"

echo
echo "proxy benchmark: $(nproc) cores, $CONNS connections, median of $ROUNDS interleaved ${SECONDS_EACH}s rounds, 1 KiB upstream body, $(date -u +%F)"
awk '
    { name[NR]=$1; rps[NR]=$2; p50[NR]=$3; p99[NR]=$4; by[$1]=$2 }
    END {
        printf "%-28s %12s %10s %10s %10s %10s\n", "server", "req/s", "p50 us", "p99 us", "vs bare", "vs nginx"
        for (i = 1; i <= NR; i++)
            printf "%-28s %12.0f %10.0f %10.0f %9.2fx %9.2fx\n", name[i], rps[i], p50[i], p99[i], rps[i]/by["bare-pingora"], rps[i]/by["nginx"]
        printf "\nkavro, zero plugins / bare pingora:          %.3f  (target >= 1.0)\n", by["kavro-0-plugins"]/by["bare-pingora"]
        printf "kavro, zero plugins / bare + read timeout:   %.3f\n", by["kavro-0-plugins"]/by["bare-pingora+read-timeout"]
        printf "kavro, zero plugins / nginx:                 %.3f  (moonshot >= 0.8)\n", by["kavro-0-plugins"]/by["nginx"]
        printf "kavro, headers+access-log / zero plugins:    %.3f  (target >= 0.80)\n", by["kavro-headers+access-log"]/by["kavro-0-plugins"]
        printf "header work, kavro plugin / pingora native:  %.3f  (target >= 1.0)\n", by["kavro-plugin-header-work"]/by["pingora-native-header-work"]
        printf "header work, kavro plugin / nginx + lua:     %.3f\n", by["kavro-plugin-header-work"]/by["nginx+lua-header-work"]
        if ("before-0-plugins" in by) {
            printf "before, zero plugins / bare pingora:         %.3f\n", by["before-0-plugins"]/by["bare-pingora"]
            printf "before, headers+access-log / zero plugins:   %.3f\n", by["before-headers+access-log"]/by["before-0-plugins"]
        }
    }' "$RESULTS"
lines=$(grep -c '"status":200' "$WORK/two.log" || true)
echo "access-log lines written during the run: $lines"
