#!/usr/bin/env bash
# Compression, all peers in one run, on the same 100 KiB HTML page:
#   static gzip: kavro-host's static route against nginx `gzip on`, both at
#   gzip level 6 (Kavro's default; nginx's is 1), every request asking for
#   gzip. Kavro compresses the file once and keeps it; nginx compresses it
#   for each request (gzip_static needs a .gz made beforehand);
#   cached brotli: kavro-host's proxy route with a cache, every request a
#   hit asking for brotli, against nginx proxy_cache with `gzip on` as the
#   reference (Debian 12's nginx has no brotli module).
# Loopback only; every load run is bounded by BENCH_SECONDS.
#
#   ./dev.sh bench-compress
#   BENCH_SECONDS=5 BENCH_ROUNDS=5 BENCH_CONNECTIONS=64 BENCH_WORKERS=1 ./dev.sh bench-compress
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN="${CARGO_TARGET_DIR:?run through ./dev.sh bench-compress}/release"
SECONDS_EACH=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-5}
CONNS=${BENCH_CONNECTIONS:-64}
WORKERS=${BENCH_WORKERS:-1}
source "$ROOT/bench/lib.sh"
bench_workdir

ORIGIN=127.0.0.1:18281
NGINX=127.0.0.1:18282
KSTATIC=127.0.0.1:18283
NGINX_CACHE=127.0.0.1:18284
KCACHE=127.0.0.1:18285
KADMIN=127.0.0.1:18286

# A page of 100 KiB that compresses like real HTML (about 6:1 with gzip).
mkdir -p "$WORK/site" "$WORK/origin" "$WORK/nginx" "$WORK/ncache" "$WORK/none"
awk 'BEGIN {
    print "<!doctype html><html><head><title>page</title></head><body>"
    for (i = 0; i < 2000; i++)
        printf "<p class=\"row r%d\">row %d: <a href=\"/item/%d\">item %d</a> %s</p>\n", i % 7, i, i * 31 % 997, i % 13, substr("lorem ipsum dolor sit amet consectetur", 1, 10 + i % 29)
    print "</body></html>"
}' > "$WORK/long.html"
head -c 102400 "$WORK/long.html" > "$WORK/site/page.html"

nginx_config "$WORK/origin.conf" 1 "    server { listen $ORIGIN; root $WORK/site; location / { add_header Cache-Control \"max-age=600\"; } }"
nginx -c "$WORK/origin.conf" -p "$WORK/origin" & PIDS+=($!)
nginx_config "$WORK/nginx.conf" "$WORKERS" "$(cat <<CONF
    server {
        listen $NGINX;
        root $WORK/site;
        gzip on;
        gzip_comp_level 6;
        gzip_min_length 256;
        gzip_vary on;
    }
CONF
)"
nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" & PIDS+=($!)
nginx_config "$WORK/ncache.conf" "$WORKERS" "$(cat <<CONF
    proxy_cache_path $WORK/ncache/store keys_zone=pages:10m;
    upstream app { server $ORIGIN; keepalive 32; }
    server {
        listen $NGINX_CACHE;
        gzip on;
        gzip_comp_level 6;
        gzip_proxied any;
        gzip_vary on;
        location / {
            proxy_cache pages;
            $NGINX_PROXY_TO_APP
        }
    }
CONF
)"
nginx -c "$WORK/ncache.conf" -p "$WORK/ncache" & PIDS+=($!)

cat > "$WORK/static.toml" <<CONF
[server]
listen = ["$KSTATIC"]
threads = $WORKERS
[[routes]]
path = "/*"
static = { root = "$WORK/site" }
CONF
cat > "$WORK/cache.toml" <<CONF
[server]
listen = ["$KCACHE"]
threads = $WORKERS
[admin]
listen = "$KADMIN"
[upstreams.origin]
targets = ["$ORIGIN"]
[[routes]]
path = "/*"
proxy = "origin"
cache = { ttl = "600s" }
CONF
KAVRO_LOG=warn "$BIN/kavro-host" --config "$WORK/static.toml" --plugins "$WORK/none" >"$WORK/kstatic.log" 2>&1 & PIDS+=($!)
KAVRO_LOG=warn "$BIN/kavro-host" --config "$WORK/cache.toml" --plugins "$WORK/none" >"$WORK/kcache.log" 2>&1 & PIDS+=($!)
for a in $ORIGIN $NGINX $KSTATIC $NGINX_CACHE $KCACHE; do wait_port "$a"; done

# Each peer answers in the coding asked for, and the body decodes to the page.
check() {
    local url=$1 coding=$2 decode=$3
    curl -fsS -H "accept-encoding: $coding" -D "$WORK/head" "$url" -o "$WORK/body"
    grep -qi "^content-encoding: $coding" "$WORK/head" \
        || { echo "$url did not answer $coding:" >&2; cat "$WORK/head" >&2; exit 1; }
    $decode < "$WORK/body" | cmp -s - "$WORK/site/page.html" \
        || { echo "$url: the $coding body does not decode to the page" >&2; exit 1; }
}
UNBR=(python3 -c 'import sys, brotli; sys.stdout.buffer.write(brotli.decompress(sys.stdin.buffer.read()))')
python3 -c 'import brotli' 2>/dev/null || UNBR=(cat)
check "http://$NGINX/page.html" gzip "gzip -dc"
check "http://$KSTATIC/page.html" gzip "gzip -dc"
check "http://$NGINX_CACHE/page.html" gzip "gzip -dc"
curl -fsS "http://$KCACHE/page.html" -o /dev/null
if [ "${UNBR[0]}" = cat ]; then
    curl -fsS -H "accept-encoding: br" -D - "http://$KCACHE/page.html" -o /dev/null | grep -qi '^content-encoding: br' \
        || { echo "kavro did not answer brotli" >&2; exit 1; }
else
    check "http://$KCACHE/page.html" br "${UNBR[*]}"
fi
curl -fsS -H "accept-encoding: br" -D - "http://$KCACHE/page.html" -o /dev/null | grep -qi '^x-kavro-cache: HIT' \
    || { echo "kavro did not answer from its cache" >&2; exit 1; }

GZ=(-H "accept-encoding: gzip")
BR=(-H "accept-encoding: br")
for spec in "$NGINX/page.html gzip" "$KSTATIC/page.html gzip" "$NGINX_CACHE/page.html gzip" "$KCACHE/page.html br"; do
    set -- $spec
    wrk -t1 -c"$CONNS" -d2s -H "accept-encoding: $2" "http://$1" >/dev/null 2>&1
    sleep 0.5
done
ROUNDS_FILE=$WORK/rounds
: > "$ROUNDS_FILE"
for r in $(seq 1 "$ROUNDS"); do
    load nginx-static-gzip "http://$NGINX/page.html" "${GZ[@]}" >> "$ROUNDS_FILE"
    load kavro-static-gzip "http://$KSTATIC/page.html" "${GZ[@]}" >> "$ROUNDS_FILE"
    load nginx-cached-gzip "http://$NGINX_CACHE/page.html" "${GZ[@]}" >> "$ROUNDS_FILE"
    load kavro-cached-br "http://$KCACHE/page.html" "${BR[@]}" >> "$ROUNDS_FILE"
    load kavro-cached-gzip "http://$KCACHE/page.html" "${GZ[@]}" >> "$ROUNDS_FILE"
    echo "round $r of $ROUNDS done" >&2
done
RESULTS=$WORK/results
median_rounds "$ROUNDS_FILE" nginx-static-gzip kavro-static-gzip nginx-cached-gzip kavro-cached-br kavro-cached-gzip > "$RESULTS"
SIZES="gzip $(curl -fsS -H 'accept-encoding: gzip' "http://$KSTATIC/page.html" | wc -c) bytes (nginx $(curl -fsS -H 'accept-encoding: gzip' "http://$NGINX/page.html" | wc -c)), br $(curl -fsS -H 'accept-encoding: br' "http://$KCACHE/page.html" | wc -c) bytes, of $(wc -c < "$WORK/site/page.html")"

echo
echo "compression benchmark: $(nproc) cores, $WORKERS worker(s) each, $CONNS connections, median of $ROUNDS interleaved ${SECONDS_EACH}s rounds, $(date -u +%F)"
echo "$SIZES"
awk '
    { name[NR]=$1; rps[NR]=$2; p50[NR]=$3; p99[NR]=$4; by[$1]=$2 }
    END {
        printf "%-24s %12s %10s %10s\n", "server", "req/s", "p50 us", "p99 us"
        for (i = 1; i <= NR; i++)
            printf "%-24s %12.0f %10.0f %10.0f\n", name[i], rps[i], p50[i], p99[i]
        printf "\nkavro static gzip / nginx gzip on:          %.3f  (target >= 1.0)\n", by["kavro-static-gzip"]/by["nginx-static-gzip"]
        printf "kavro cached br / nginx proxy_cache gzip:   %.3f  (reference)\n", by["kavro-cached-br"]/by["nginx-cached-gzip"]
        printf "kavro cached gzip / nginx proxy_cache gzip: %.3f\n", by["kavro-cached-gzip"]/by["nginx-cached-gzip"]
    }' "$RESULTS"
