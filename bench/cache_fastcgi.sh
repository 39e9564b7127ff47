#!/usr/bin/env bash
# Cache hits, revalidation and FastCGI, all peers in one run:
#   cache hits: kavro-host (proxy route with a cache) against Varnish, both
#   in front of the same origin, every request a hit after the warm-up;
#   revalidation: the same pair on a file the origin serves with
#   `Cache-Control: max-age=0` and an ETag, so that every request is a
#   stale entry revalidated by a conditional request the origin answers 304;
#   FastCGI: kavro-host's fastcgi action against nginx fastcgi_pass, both to
#   the same php-fpm pool running a hello-world script; with
#   BENCH_FASTCGI_KEEPALIVE=1 also, for reference, nginx keeping its php-fpm
#   connections alive (not the stock setup; it shares the pool, so it is
#   off by default and cannot disturb the measured pair).
# Loopback only; every load run is bounded by BENCH_SECONDS.
#
#   ./dev.sh bench-cache
#   BENCH_SECONDS=5 BENCH_ROUNDS=5 BENCH_CONNECTIONS=64 ./dev.sh bench-cache
# The FastCGI pair runs BENCH_FASTCGI_WORKERS proxy workers each (default 1:
# on a 2-core machine php-fpm needs the other core).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN="${CARGO_TARGET_DIR:?run through ./dev.sh bench-cache}/release"
SECONDS_EACH=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-5}
CONNS=${BENCH_CONNECTIONS:-64}
PHP_CHILDREN=${BENCH_PHP_CHILDREN:-4}
FCGI_WORKERS=${BENCH_FASTCGI_WORKERS:-1}
KEEPALIVE_PEER=${BENCH_FASTCGI_KEEPALIVE:-0}
source "$ROOT/bench/lib.sh"
bench_workdir

ORIGIN=127.0.0.1:18181
VARNISH=127.0.0.1:18182
KCACHE=127.0.0.1:18183
NGINX_FCGI=127.0.0.1:18184
KFCGI=127.0.0.1:18185
NGINX_FCGI_KA=127.0.0.1:18186
FPM_SOCK=$WORK/fpm.sock

# The origin: nginx answering a fixed 1 KiB body, cacheable for 10 minutes;
# and under /reval/ a 1 KiB file, stale at once, with its ETag and
# Last-Modified (nginx answers a matching If-None-Match with 304).
mkdir -p "$WORK/origin" "$WORK/nginx" "$WORK/app" "$WORK/varnish" "$WORK/files/reval"
BODY=$(head -c 1024 /dev/zero | tr '\0' 'k')
printf '%s' "$BODY" > "$WORK/files/reval/page"
nginx_config "$WORK/origin.conf" 1 "$(cat <<CONF
    server {
        listen $ORIGIN;
        location / { default_type text/plain; add_header Cache-Control "max-age=600"; return 200 "$BODY"; }
        location /reval/ { root $WORK/files; default_type text/plain; add_header Cache-Control "max-age=0"; }
    }
CONF
)"
nginx -c "$WORK/origin.conf" -p "$WORK/origin" & PIDS+=($!)

# Varnish with its built-in VCL: GETs without cookies are cached per the
# origin's Cache-Control. A response stale at once is kept, as Kavro keeps
# it (no grace, kept 10 minutes), so that each request revalidates it;
# the built-in VCL would instead mark it uncacheable. Its TTL is 1 ms, not
# 0: Varnish revalidates nothing it stored with a TTL of 0.
cat > "$WORK/varnish.vcl" <<VCL
vcl 4.1;
backend origin { .host = "${ORIGIN%:*}"; .port = "${ORIGIN#*:}"; }
sub vcl_backend_response {
    if (bereq.url ~ "^/reval/") {
        set beresp.ttl = 0.001s;
        set beresp.grace = 0s;
        set beresp.keep = 600s;
        return (deliver);
    }
}
VCL
varnishd -F -a "$VARNISH" -f "$WORK/varnish.vcl" -n "$WORK/varnish" -s malloc,64m >"$WORK/varnish.log" 2>&1 & PIDS+=($!)

# php-fpm: one pool that both nginx and Kavro talk to.
echo '<?php echo "hello from php\n";' > "$WORK/app/hello.php"
FPM_USER=""
[ "$(id -u)" -eq 0 ] && FPM_USER=$'user = www-data\ngroup = www-data'
cat > "$WORK/fpm.conf" <<CONF
[global]
error_log = $WORK/fpm.log
daemonize = no
[bench]
$FPM_USER
listen = $FPM_SOCK
listen.mode = 0666
listen.backlog = 4096
pm = static
pm.max_children = $PHP_CHILDREN
CONF
FPM=$(ls /usr/sbin/php-fpm* 2>/dev/null | head -1)
"$FPM" --nodaemonize --fpm-config "$WORK/fpm.conf" -n >/dev/null 2>&1 & PIDS+=($!)

# nginx_fastcgi NAME LISTEN PASS [UPSTREAM_BLOCK [LOCATION_EXTRA]]: an
# nginx in $WORK/NAME passing *.php to PASS with Debian's fastcgi_params.
nginx_fastcgi() {
    mkdir -p "$WORK/$1"
    nginx_config "$WORK/$1.conf" $FCGI_WORKERS "$(cat <<CONF
    ${4:-}
    server {
        listen $2;
        root $WORK/app;
        location ~ \.php$ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
            ${5:-}
            fastcgi_pass $3;
        }
    }
CONF
)"
    nginx -c "$WORK/$1.conf" -p "$WORK/$1" & PIDS+=($!)
}

# nginx fastcgi_pass, as the Debian snippet sets it up.
nginx_fastcgi nginx "$NGINX_FCGI" "unix:$FPM_SOCK"
# For reference: the same, keeping its php-fpm connections alive as Kavro
# does (not the stock setup). Idle ones close soon after its turn, like
# Kavro's, so that the next turn finds the pool free.
FCGI_PEERS=("$NGINX_FCGI" "$KFCGI")
if [ "$KEEPALIVE_PEER" = 1 ]; then
    nginx_fastcgi nginx-ka "$NGINX_FCGI_KA" fpm \
        "upstream fpm { server unix:$FPM_SOCK; keepalive $PHP_CHILDREN; keepalive_timeout 300ms; }" \
        "fastcgi_keep_conn on;"
    FCGI_PEERS+=("$NGINX_FCGI_KA")
fi

KADMIN=127.0.0.1:18187
cat > "$WORK/cache.toml" <<CONF
[server]
listen = ["$KCACHE"]
[admin]
listen = "$KADMIN"
[upstreams.origin]
targets = ["$ORIGIN"]
[[routes]]
path = "/*"
proxy = "origin"
cache = { ttl = "600s" }
CONF
cat > "$WORK/fcgi.toml" <<CONF
[server]
listen = ["$KFCGI"]
threads = $FCGI_WORKERS
[[routes]]
path = "/*.php"
[routes.fastcgi]
address = "unix:$FPM_SOCK"
root = "$WORK/app"
max_connections = $PHP_CHILDREN
# Kept-alive connections hold php-fpm workers: free them soon after Kavro's
# turn, so that nginx's turn finds the pool idle.
idle_timeout_ms = 300
CONF
mkdir -p "$WORK/none"
KAVRO_LOG=warn "$BIN/kavro-host" --config "$WORK/cache.toml" --plugins "$WORK/none" >"$WORK/kcache.log" 2>&1 & PIDS+=($!)
KAVRO_LOG=warn "$BIN/kavro-host" --config "$WORK/fcgi.toml" --plugins "$WORK/none" >"$WORK/kfcgi.log" 2>&1 & PIDS+=($!)

for a in $ORIGIN $VARNISH $KCACHE "${FCGI_PEERS[@]}"; do wait_port "$a"; done
for _ in $(seq 1 100); do [ -S "$FPM_SOCK" ] && break; sleep 0.05; done

# Fill both caches and check every server answers what it should.
for a in $VARNISH $KCACHE; do curl -fsS "http://$a/page" -o /dev/null; done
curl -fsS -D - "http://$KCACHE/page" -o /dev/null | grep -qi '^x-kavro-cache: HIT' \
    || { echo "kavro did not answer from its cache" >&2; exit 1; }
curl -fsS -D - "http://$VARNISH/page" -o /dev/null | grep -qi '^age: ' \
    || { echo "varnish did not answer from its cache" >&2; exit 1; }
for a in $VARNISH $KCACHE; do curl -fsS "http://$a/reval/page" -o /dev/null; done
curl -fsS -D - "http://$KCACHE/reval/page" -o /dev/null | grep -qi '^x-kavro-cache: REVALIDATED' \
    || { echo "kavro did not revalidate its entry" >&2; exit 1; }
varnish_304s() { varnishstat -n "$WORK/varnish" -1 -f MAIN.fetch_304 | awk '{print $2}'; }
before=$(varnish_304s)
curl -fsS "http://$VARNISH/reval/page" -o /dev/null
[ "$(varnish_304s)" -gt "$before" ] \
    || { echo "varnish did not revalidate its object (MAIN.fetch_304 stayed $before)" >&2; exit 1; }
for a in "${FCGI_PEERS[@]}"; do
    [ "$(curl -fsS "http://$a/hello.php")" = "hello from php" ] \
        || { echo "$a did not run hello.php" >&2; exit 1; }
    sleep 0.5
done

WARM=("http://$VARNISH/page" "http://$KCACHE/page" "http://$VARNISH/reval/page" "http://$KCACHE/reval/page")
for a in "${FCGI_PEERS[@]}"; do WARM+=("http://$a/hello.php"); done
for u in "${WARM[@]}"; do
    wrk -t1 -c"$CONNS" -d2s "$u" >/dev/null 2>&1
    sleep 0.5
done
ROUNDS_FILE=$WORK/rounds
: > "$ROUNDS_FILE"
for r in $(seq 1 "$ROUNDS"); do
    load varnish-hit "http://$VARNISH/page" >> "$ROUNDS_FILE"
    load kavro-hit "http://$KCACHE/page" >> "$ROUNDS_FILE"
    load varnish-reval "http://$VARNISH/reval/page" >> "$ROUNDS_FILE"
    load kavro-reval "http://$KCACHE/reval/page" >> "$ROUNDS_FILE"
    # Each FastCGI turn starts after the last one's kept-alive connections
    # have closed (300 ms idle), with every php-fpm worker free. The
    # reference peer goes last: the connections it leaves queued in
    # php-fpm's backlog drain during the cache turns, not a measured one.
    sleep 0.5; load nginx-fastcgi "http://$NGINX_FCGI/hello.php" >> "$ROUNDS_FILE"
    sleep 0.5; load kavro-fastcgi "http://$KFCGI/hello.php" >> "$ROUNDS_FILE"
    if [ "$KEEPALIVE_PEER" = 1 ]; then
        sleep 0.5; load nginx-fastcgi-keepalive "http://$NGINX_FCGI_KA/hello.php" >> "$ROUNDS_FILE"
    fi
    echo "round $r of $ROUNDS done" >&2
done
# How many origin revalidations (304s) each made, against the requests
# they answered: both collapse concurrent revalidations of one entry.
REVAL_304S="varnish $(varnish_304s), kavro $(curl -fsS "http://$KADMIN/diagnostics" | grep -o '"revalidated_304": *[0-9]*' | grep -o '[0-9]*$')"
RESULTS=$WORK/results
NAMES=(varnish-hit kavro-hit varnish-reval kavro-reval nginx-fastcgi kavro-fastcgi)
[ "$KEEPALIVE_PEER" = 1 ] && NAMES+=(nginx-fastcgi-keepalive)
median_rounds "$ROUNDS_FILE" "${NAMES[@]}" > "$RESULTS"

echo
echo "cache + revalidation + fastcgi benchmark: $(nproc) cores, $CONNS connections, median of $ROUNDS interleaved ${SECONDS_EACH}s rounds, $PHP_CHILDREN php-fpm workers, $FCGI_WORKERS fastcgi proxy worker(s), $(date -u +%F)"
awk '
    { name[NR]=$1; rps[NR]=$2; p50[NR]=$3; p99[NR]=$4; by[$1]=$2 }
    END {
        printf "%-24s %12s %10s %10s\n", "server", "req/s", "p50 us", "p99 us"
        for (i = 1; i <= NR; i++)
            printf "%-24s %12.0f %10.0f %10.0f\n", name[i], rps[i], p50[i], p99[i]
        printf "\nkavro cache hits / varnish hits:       %.3f  (target >= 1.0)\n", by["kavro-hit"]/by["varnish-hit"]
        printf "kavro revalidation / varnish:          %.3f\n", by["kavro-reval"]/by["varnish-reval"]
        printf "origin 304s over the whole run:        %s\n", reval
        printf "kavro fastcgi / nginx fastcgi_pass:    %.3f  (target >= 1.0)\n", by["kavro-fastcgi"]/by["nginx-fastcgi"]
        if ("nginx-fastcgi-keepalive" in by)
            printf "kavro fastcgi / nginx with keep-alive: %.3f  (reference)\n", by["kavro-fastcgi"]/by["nginx-fastcgi-keepalive"]
    }' reval="$REVAL_304S" "$RESULTS"
