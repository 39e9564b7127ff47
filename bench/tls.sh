#!/usr/bin/env bash
# TLS termination, all peers in one run against one plain upstream, each
# terminating TLS with the same ECDSA P-256 certificate and key:
#   bare Pingora with Kavro's TLS settings (rustls, TLS 1.2 and 1.3, HTTP/2
#   and HTTP/1.1 by ALPN), kavro-host with zero plugins, and nginx
#   (`listen ... ssl http2`, shared session cache, proxy_pass).
# Loopback only; every load run is bounded by BENCH_SECONDS.
#
#   ./dev.sh bench-tls        (builds what it needs first)
#   BENCH_SECONDS=5 BENCH_ROUNDS=5 BENCH_CONNECTIONS=64 ./dev.sh bench-tls
#   BENCH_H2_STREAMS=10       concurrent streams per HTTP/2 connection
#   BENCH_HANDSHAKE_CLIENTS=8 openssl s_time loops for the full handshakes
#
# Four measures, each server in turn, in interleaved rounds (the servers'
# order rotates each round); each server reports its median round:
#   full     full handshakes/s: BENCH_HANDSHAKE_CLIENTS `openssl s_time -new`
#            loops, each opening connections one after another, with a full
#            handshake (no session offered) and one request
#            (`Connection: close`) on each. Counted over BENCH_SECONDS after
#            a 1 s start. No latency figures.
#   resumed  one request per connection: wrk with `Connection: close`. wrk
#            keeps each connection's session and offers it when it
#            reconnects, so these are TLS 1.3 resumptions (PSK with a fresh
#            ECDHE), answered from each server's own session store (rustls:
#            its in-memory cache; nginx: tickets). rustls keeps 256 sessions
#            and stores two a handshake, so above about 128 connections some
#            of its resumptions turn into full handshakes. wrk's latency
#            starts once the handshake is done.
#   h1       requests/s over kept-alive TLS HTTP/1.1 connections: wrk.
#   h2       requests/s over HTTP/2: h2load, 2 threads, BENCH_CONNECTIONS
#            connections with BENCH_H2_STREAMS streams each; percentiles
#            from its per-request log.
# Beside requests/s: the server's CPU time per request (its process and
# children, from /proc over the run), which holds up better than requests/s
# when the load generator shares the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN="${CARGO_TARGET_DIR:?run through ./dev.sh bench-tls}/release"
SECONDS_EACH=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-5}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-0}
STREAMS=${BENCH_H2_STREAMS:-10}
HS_CLIENTS=${BENCH_HANDSHAKE_CLIENTS:-8}
HZ=$(getconf CLK_TCK)

# Apart from the other benchmarks' ports (run.sh: 18081-18088,
# instructions.sh: 18091-18093, cache_fastcgi.sh and one_phase.sh: 1818x,
# languages.sh: 184xx from 18400).
UP=127.0.0.1:18441
BARE=127.0.0.1:18442
KAVRO=127.0.0.1:18443
NGINX=127.0.0.1:18444
KAVRO_PLAIN=127.0.0.1:18445 # kavro-host needs a plain listener; not measured

source "$ROOT/bench/lib.sh"
bench_workdir

# One ECDSA P-256 key and certificate for bench.test and 127.0.0.1, signed
# by a throwaway CA so that curl can check the chain; every server serves
# the leaf alone.
CERTS=$WORK/certs
CERT=$CERTS/cert.pem
KEY=$CERTS/key.pem
mkdir -p "$CERTS"
printf '%s\n' 'basicConstraints = critical, CA:FALSE' 'keyUsage = critical, digitalSignature' \
    'extendedKeyUsage = serverAuth' 'subjectAltName = DNS:bench.test, IP:127.0.0.1' > "$CERTS/leaf.ext"
if ! {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CERTS/ca.key" &&
        openssl req -x509 -new -key "$CERTS/ca.key" -sha256 -days 2 -subj "/CN=Kavro bench CA" -out "$CERTS/ca.pem" &&
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$KEY" &&
        openssl req -new -key "$KEY" -subj "/CN=bench.test" -out "$CERTS/leaf.csr" &&
        openssl x509 -req -in "$CERTS/leaf.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca.key" -set_serial 2 \
            -days 2 -sha256 -extfile "$CERTS/leaf.ext" -out "$CERT"
} >"$CERTS/openssl.log" 2>&1; then
    echo "making the certificate failed:" >&2
    cat "$CERTS/openssl.log" >&2
    exit 1
fi

fixed_upstream "$UP"
mkdir -p "$WORK/px"

# The nginx peer: TLS 1.2 and 1.3 with rustls' TLS 1.2 suites for an ECDSA
# key, a shared session cache, proxy_pass with an upstream keep-alive pool.
NGINX_WORKERS=$THREADS; [ "$NGINX_WORKERS" = 0 ] && NGINX_WORKERS=auto
nginx_config "$WORK/px.conf" $NGINX_WORKERS "$(cat <<EOF
    upstream app { server $UP; keepalive 128; }
    server {
        listen $NGINX ssl http2;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1h;
        location / {
            $NGINX_PROXY_TO_APP
        }
    }
EOF
)"
nginx -c "$WORK/px.conf" -p "$WORK/px" & PIDS+=($!)
NGINX_PID=$!

"$BIN/bare-pingora" --listen "$BARE" --upstream "$UP" --threads "$THREADS" \
    --tls-cert "$CERT" --tls-key "$KEY" >"$WORK/bare.log" 2>&1 & PIDS+=($!)
BARE_PID=$!

mkdir -p "$WORK/none"
cat > "$WORK/none.toml" <<EOF
[server]
listen = ["$KAVRO_PLAIN"]
threads = $THREADS
[tls]
listen = ["$KAVRO"]
redirect = false
[[tls.certificates]]
cert = "$CERT"
key = "$KEY"
[upstreams.app]
targets = ["$UP"]
[[routes]]
path = "/*"
proxy = "app"
EOF
# With the default log filter, as an operator runs it.
"$BIN/kavro-host" --config "$WORK/none.toml" --plugins "$WORK/none" >"$WORK/none.log" 2>&1 & PIDS+=($!)
KAVRO_PID=$!

SERVERS=(nginx bare-pingora kavro-0-plugins)
declare -A ADDR=([nginx]=$NGINX [bare-pingora]=$BARE [kavro-0-plugins]=$KAVRO)
declare -A PID=([nginx]=$NGINX_PID [bare-pingora]=$BARE_PID [kavro-0-plugins]=$KAVRO_PID)
MEASURES=(full resumed h1 h2)
declare -A TITLE=(
    [full]="full handshakes (s_time -new, 1 request each)"
    [resumed]="resumed handshakes (wrk, Connection: close)"
    [h1]="HTTP/1.1 keep-alive (wrk)"
    [h2]="HTTP/2 (h2load -m$STREAMS)"
)

for a in $UP $NGINX $BARE $KAVRO_PLAIN $KAVRO; do wait_port "$a"; done

# The request s_time sends: it writes "GET <page> HTTP/1.0\r\n\r\n", so the
# page carries an HTTP/1.1 request line's end, Host and Connection, and a
# last header that takes s_time's " HTTP/1.0".
RAW_REQUEST=$'/ HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\nX-Bench:'

# Each server answers the 1 KiB body over HTTP/1.1 and HTTP/2 (ALPN), with a
# chain that verifies for bench.test, and to s_time's request.
for s in "${SERVERS[@]}"; do
    a=${ADDR[$s]}
    for v in http1.1 http2; do
        got=$(curl -sS --max-time 5 --cacert "$CERTS/ca.pem" --resolve "bench.test:${a#*:}:127.0.0.1" \
            --"$v" -o /dev/null -w '%{http_code} %{http_version} %{size_download}' "https://bench.test:${a#*:}/" || true)
        want="200 ${v#http} 1024"
        [ "$got" = "$want" ] || { echo "$s over $v: got '$got', want '$want'" >&2; exit 1; }
    done
    got=$(timeout 10 openssl s_time -connect "$a" -new -time 1 -www "$RAW_REQUEST" 2>&1 \
        | awk '/bytes read per connection/ { for (i = 2; i <= NF; i++) if ($i == "bytes") print $(i - 1) }' || true)
    [ "${got:-0}" -gt 1024 ] || { echo "$s: openssl s_time read ${got:-nothing} bytes a connection" >&2; exit 1; }
done

# server_ticks PID: CPU ticks PID and its children (nginx's workers) used so far.
server_ticks() {
    local t=0 p
    for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}

# per_request TICKS REQUESTS: server CPU microseconds a request.
per_request() {
    awk -v t="$1" -v n="$2" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.0f", t * 1e6 / hz / n; else print 0 }'
}

# Each measure: run MEASURE SERVER prints "MEASURE/SERVER rps p50_us p99_us cpu_us".
run_full() {
    local s=$2 dir=$WORK/s_time pids=() i n0 n1 c0 c1 t0 t1 n
    rm -rf "$dir"
    mkdir -p "$dir"
    for i in $(seq 1 "$HS_CLIENTS"); do
        openssl s_time -connect "${ADDR[$s]}" -new -time $((SECONDS_EACH + 3)) -www "$RAW_REQUEST" \
            >"$dir/$i" 2>&1 &
        pids+=($!)
    done
    # s_time writes one '*' a connection made with a full handshake ('r' for
    # a resumed one, which -new never asks for).
    sleep 1
    n0=$(cat "$dir"/* | tr -cd '*' | wc -c); c0=$(server_ticks "${PID[$s]}"); t0=$(date +%s%N)
    sleep "$SECONDS_EACH"
    n1=$(cat "$dir"/* | tr -cd '*' | wc -c); c1=$(server_ticks "${PID[$s]}"); t1=$(date +%s%N)
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    n=$((n1 - n0))
    [ "$n" -gt 0 ] || { echo "openssl s_time against ${ADDR[$s]} made no connection:" >&2; cat "$dir/1" >&2; }
    echo "$1/$s $(awk -v n="$n" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", n / (ns / 1e9) }') - - $(per_request $((c1 - c0)) "$n")"
}

# wrk through lib.sh's load; its request count is requests/s times the run.
run_wrk() {
    local m=$1 s=$2 c0 c1 name rps p50 p99
    shift 2
    c0=$(server_ticks "${PID[$s]}")
    read -r name rps p50 p99 < <(load "$m/$s" "https://${ADDR[$s]}/" "$@")
    c1=$(server_ticks "${PID[$s]}")
    echo "$name ${rps:-0} ${p50:--} ${p99:--} $(per_request $((c1 - c0)) "$(awk -v r="${rps:-0}" -v d="$SECONDS_EACH" \
        'BEGIN { printf "%.0f", r * d }')")"
}
run_resumed() { run_wrk "$1" "$2" -H "Connection: close"; }
run_h1() { run_wrk "$1" "$2"; }

run_h2() {
    local s=$2 log=$WORK/h2.log out c0 c1 rps done_ failed lat
    rm -f "$log"
    c0=$(server_ticks "${PID[$s]}")
    out=$(h2load -t2 -c"$CONNS" -m"$STREAMS" -D "$SECONDS_EACH" --log-file "$log" "https://${ADDR[$s]}/" 2>&1 || true)
    c1=$(server_ticks "${PID[$s]}")
    # "finished in 5.00s, 12345.67 req/s, 12.81MB/s"
    rps=$(awk '/^finished in/ {print $4}' <<<"$out")
    # "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
    done_=$(awk '/^requests:/ {print $6}' <<<"$out")
    failed=$(awk '/^requests:/ {print $10 + $12 + $14}' <<<"$out")
    if [ -z "$rps" ] || [ "${failed:-1}" != 0 ] || ! grep -q '^Application protocol: h2' <<<"$out" \
        || ! grep -q '^TLS Protocol: TLSv1.3' <<<"$out"; then
        echo "h2load against ${ADDR[$s]} failed or did not speak h2 over TLS 1.3:" >&2
        echo "$out" >&2
    fi
    # The log: start time, status, microseconds to the end of the response.
    lat="- -"
    [ -s "$log" ] && lat=$(awk -F'\t' '$2 == 200 {print $3}' "$log" | sort -n \
        | awk '{a[NR] = $1} END { i = int(NR * 0.99); if (i < 1) i = 1; if (NR) print a[int((NR + 1) / 2)], a[i]; else print "- -" }')
    echo "$1/$s ${rps:-0} $lat $(per_request $((c1 - c0)) "${done_:-0}")"
}

# Warm every server (upstream pools, both protocols), then measure.
for s in "${SERVERS[@]}"; do
    wrk -t1 -c"$CONNS" -d2s "https://${ADDR[$s]}/" >/dev/null 2>&1
    h2load -t2 -c"$CONNS" -m"$STREAMS" -D 1 "https://${ADDR[$s]}/" >/dev/null 2>&1 || true
done
ROUNDS_FILE=$WORK/rounds
: > "$ROUNDS_FILE"
for r in $(seq 1 "$ROUNDS"); do
    k=$((r % ${#SERVERS[@]}))
    order=("${SERVERS[@]:k}" "${SERVERS[@]:0:k}")
    for m in "${MEASURES[@]}"; do
        for s in "${order[@]}"; do
            "run_$m" "$m" "$s" >> "$ROUNDS_FILE"
        done
    done
    echo "round $r of $ROUNDS done" >&2
done
NAMES=()
for m in "${MEASURES[@]}"; do for s in "${SERVERS[@]}"; do NAMES+=("$m/$s"); done; done
RESULTS=$WORK/results
median_rounds "$ROUNDS_FILE" "${NAMES[@]}" > "$RESULTS"

echo
echo "TLS benchmark: $(nproc) cores, ECDSA P-256 certificate, TLS 1.3, 1 KiB upstream body, median of $ROUNDS interleaved ${SECONDS_EACH}s rounds, $(date -u +%F)"
echo "  full: $HS_CLIENTS s_time clients; resumed and h1: wrk, 1 thread, $CONNS connections; h2: h2load, 2 threads, $CONNS connections x $STREAMS streams"
for m in "${MEASURES[@]}"; do
    echo
    echo "${TITLE[$m]}"
    awk -v m="$m" '
        { split($1, k, "/"); if (k[1] != m) next
          n++; name[n] = k[2]; rps[n] = $2; p50[n] = $3; p99[n] = $4; cpu[n] = $5; by[k[2]] = $2 }
        function us(v) { return v == "-" ? "-" : sprintf("%.0f", v) }
        function ratio(a, b) { return b > 0 ? sprintf("%.2fx", a / b) : "-" }
        END {
            printf "  %-18s %10s %9s %9s %12s %8s %8s\n", "server", "req/s", "p50 us", "p99 us", "CPU us/req", "vs bare", "vs nginx"
            for (i = 1; i <= n; i++)
                printf "  %-18s %10.0f %9s %9s %12s %8s %8s\n", name[i], rps[i], us(p50[i]), us(p99[i]), cpu[i],
                    ratio(rps[i], by["bare-pingora"]), ratio(rps[i], by["nginx"])
        }' "$RESULTS"
done
echo
awk '
    { split($1, k, "/"); rps[k[1], k[2]] = $2; cpu[k[1], k[2]] = $5; if (!(k[1] in seen)) { seen[k[1]] = 1; order[++n] = k[1] } }
    function ratio(a, b) { return b > 0 ? sprintf("%.3f", a / b) : "-" }
    END {
        printf "%-32s", "req/s ratios"; for (i = 1; i <= n; i++) printf " %8s", order[i]; print ""
        printf "%-32s", "kavro, zero plugins / bare"; for (i = 1; i <= n; i++) printf " %8s", ratio(rps[order[i], "kavro-0-plugins"], rps[order[i], "bare-pingora"]); print ""
        printf "%-32s", "kavro, zero plugins / nginx"; for (i = 1; i <= n; i++) printf " %8s", ratio(rps[order[i], "kavro-0-plugins"], rps[order[i], "nginx"]); print ""
        printf "%-32s", "CPU a request, kavro / bare"; for (i = 1; i <= n; i++) printf " %8s", ratio(cpu[order[i], "kavro-0-plugins"], cpu[order[i], "bare-pingora"]); print ""
    }' "$RESULTS"
