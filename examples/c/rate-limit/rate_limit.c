/* Sliding-window rate limiter.
 *
 * prime: each client (its IP, or the value of the header named by the
 * `key_header` config value) may send `limit` requests (default 10) in any
 * `window_s` seconds (default 60). A request adds one to its client's
 * counter for the current window with the KV store's atomic increment, so
 * two requests racing on one client never both get its last slot, however
 * many instances run them. The count it gets back, plus the previous
 * window's weighted by how much of it the sliding window still covers,
 * decides: over the limit, 429 with Retry-After, and the request takes its
 * count back. package: every admitted response says the limit, what is
 * left and when the window resets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kavro.h"

KAVRO_PLUGIN("rate-limit", "0.2.0", "kv");

typedef struct {
    bool counted;
    long long limit, remaining, reset_s;
} state;

static uint64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static long long setting(const char *key, long long fallback) {
    const char *v = kavro_config(key);
    long long n = v ? atoll(v) : 0;
    return n > 0 ? n : fallback;
}

kavro_outcome kavro_prime(kavro_request req) {
    long long limit = setting("limit", 10);
    uint64_t window_ms = (uint64_t)setting("window_s", 60) * 1000;
    const char *header = kavro_config("key_header");
    const char *who = header ? kavro_req_header(req, header) : NULL;
    if (who == NULL) who = kavro_req_client_ip(req);

    uint64_t now = now_ms(), window = now / window_ms, into = now % window_ms;
    char current[300], previous[300];
    snprintf(current, sizeof current, "n:%.256s:%llu", who, (unsigned long long)window);
    snprintf(previous, sizeof previous, "n:%.256s:%llu", who, (unsigned long long)(window - 1));
    int64_t count = 0;
    /* Kept two windows: this one, then as the next one's previous. */
    if (!kavro_kv_increment(current, 1, 2 * window_ms, &count)) {
        return kavro_continue(); /* the store refused: admitting is the lesser harm */
    }
    const char *saved = kavro_kv_get(previous);
    uint64_t before = saved ? strtoull(saved, NULL, 10) : 0;
    /* Rounded up: the previous window never lends a slot it used. */
    long long estimate = count + (long long)((before * (window_ms - into) + window_ms - 1) / window_ms);
    long long reset_s = (long long)((window_ms - into + 999) / 1000);

    state *s = kavro_state(sizeof *s);
    if (estimate > limit) {
        int64_t ignored;
        kavro_kv_increment(current, -1, 0, &ignored);
        char retry[32];
        snprintf(retry, sizeof retry, "%lld", reset_s);
        kavro_reply *r = kavro_reply_new(429);
        kavro_reply_header(r, "retry-after", retry);
        kavro_reply_header(r, "content-type", "text/plain");
        kavro_reply_text(r, "429 Too Many Requests\n");
        return kavro_respond(r);
    }
    s->counted = true;
    s->limit = limit;
    s->remaining = limit - estimate;
    s->reset_s = reset_s;
    return kavro_continue();
}

void kavro_package(kavro_request req, kavro_response resp) {
    (void)req;
    state *s = kavro_state(sizeof *s);
    if (!s->counted) return;
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", s->limit);
    kavro_resp_set_header(resp, "ratelimit-limit", buf);
    snprintf(buf, sizeof buf, "%lld", s->remaining);
    kavro_resp_set_header(resp, "ratelimit-remaining", buf);
    snprintf(buf, sizeof buf, "%lld", s->reset_s);
    kavro_resp_set_header(resp, "ratelimit-reset", buf);
}
