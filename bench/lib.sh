# Helpers shared by the benchmark scripts (sourced, not run).
# Expects CONNS and SECONDS_EACH.

wait_port() {
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on $1" >&2
    exit 1
}

to_us() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); print v+0 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); print v*1000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); print v*1000000 }
        else print v }'
}

# load NAME URL [WRK ARGS...]: runs wrk and prints "NAME rps p50_us p99_us".
load() {
    local out rps p50 p99
    out=$(wrk -t1 -c"$CONNS" -d"${SECONDS_EACH}s" --latency "${@:3}" "$2" 2>&1)
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    [ -n "$rps" ] || { echo "wrk against $2 failed:" >&2; echo "$out" >&2; }
    echo "$1 $rps $(to_us "$p50") $(to_us "$p99")"
}

# median_rounds FILE NAME...: each NAME's median line by requests/s.
median_rounds() {
    local file=$1
    shift
    for s in "$@"; do
        grep "^$s " "$file" | sort -k2 -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'
    done
}

# Sets WORK, a temp folder removed at exit (kept, and named, with
# BENCH_KEEP=1: logs, configs, callgrind files), and PIDS, whose processes
# are stopped at exit.
bench_workdir() {
    WORK=$(mktemp -d)
    chmod 755 "$WORK"
    PIDS=()
    trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; bench_cleanup' EXIT
}

bench_cleanup() {
    if [ -n "${BENCH_KEEP:-}" ]; then
        echo "kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}

# nginx_config FILE WORKERS SERVERS [MAIN]: an nginx config, in the
# foreground, without access logs, keeping client connections, around
# SERVERS (the server and upstream blocks), with MAIN (load_module lines)
# at the top.
nginx_config() {
    cat > "$1" <<CONF
${4:-}
worker_processes $2;
daemon off;
pid $1.pid;
error_log $1.error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
$3
}
CONF
}

# The directives every nginx proxy peer forwards with: HTTP/1.1 to the
# upstream block named `app`, keeping its connections alive, as Pingora does.
NGINX_PROXY_TO_APP='proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";'

# fixed_upstream ADDR: starts, under $WORK/up, the upstream the proxy
# benchmarks share: nginx answering a fixed 1 KiB body from memory.
fixed_upstream() {
    local body
    body=$(head -c 1024 /dev/zero | tr '\0' 'k')
    mkdir -p "$WORK/up"
    nginx_config "$WORK/up.conf" 1 "    server { listen $1; location / { default_type text/plain; return 200 \"$body\"; } }"
    nginx -c "$WORK/up.conf" -p "$WORK/up" & PIDS+=($!)
}

# headers_and_access_log DIR: the first-party headers and access-log
# plugins, as the proxy benchmarks load them, with headers' settings.
headers_and_access_log() {
    mkdir -p "$1"
    cp "$WASM/headers.wasm" "$WASM/access_log.wasm" "$1/"
    cat > "$1/headers.toml" <<EOF
[config]
request_set = "x-env: bench"
response_set = "x-served-by: kavro"
EOF
}
