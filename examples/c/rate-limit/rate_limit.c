/* Token-bucket rate limiter.
 *
 * prime: each client (its IP, or the value of the header named by the
 * `key_header` config value) has a bucket of `burst` tokens (default 10)
 * refilled at `per_second` tokens a second (default 5), kept in the host's
 * KV store so every instance shares it. A request takes a token, or is
 * answered 429 with Retry-After. package: every response says the limit
 * and, when admitted, how many tokens are left.
 *
 * The read-then-write of a bucket is not atomic: two requests racing on one
 * bucket may both take its last token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kavro.h"

KAVRO_PLUGIN("rate-limit", "0.1.0", "kv");

typedef struct {
    int remaining;
    bool limited;
} state;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

static double setting(const char *key, double fallback) {
    const char *v = kavro_config(key);
    double d = v ? atof(v) : 0;
    return d > 0 ? d : fallback;
}

kavro_outcome kavro_prime(kavro_request req) {
    double burst = setting("burst", 10), rate = setting("per_second", 5);
    const char *header = kavro_config("key_header");
    const char *who = header ? kavro_req_header(req, header) : NULL;
    if (who == NULL) who = kavro_req_client_ip(req);

    char key[300];
    snprintf(key, sizeof key, "bucket:%.256s", who);
    double now = now_ms(), tokens = burst, last = now;
    const char *saved = kavro_kv_get(key);
    if (saved) sscanf(saved, "%lf %lf", &tokens, &last);
    tokens += (now - last) / 1000.0 * rate;
    if (tokens > burst) tokens = burst;

    state *s = kavro_state(sizeof *s);
    s->limited = tokens < 1;
    if (!s->limited) tokens -= 1;
    char value[64];
    snprintf(value, sizeof value, "%.6f %.3f", tokens, now);
    /* Once full again the bucket needs no record. */
    kavro_kv_set(key, value, (uint64_t)(burst / rate * 1000.0) + 1000);

    if (s->limited) {
        double wait = (1 - tokens) / rate;
        char retry[32];
        snprintf(retry, sizeof retry, "%d", (int)wait + (wait > (int)wait));
        kavro_reply *r = kavro_reply_new(429);
        kavro_reply_header(r, "retry-after", retry);
        kavro_reply_header(r, "content-type", "text/plain");
        kavro_reply_text(r, "429 Too Many Requests\n");
        return kavro_respond(r);
    }
    s->remaining = (int)tokens;
    return kavro_continue();
}

void kavro_package(kavro_request req, kavro_response resp) {
    (void)req;
    state *s = kavro_state(sizeof *s);
    char buf[32];
    snprintf(buf, sizeof buf, "%d", (int)setting("burst", 10));
    kavro_resp_set_header(resp, "x-ratelimit-limit", buf);
    if (!s->limited) {
        snprintf(buf, sizeof buf, "%d", s->remaining);
        kavro_resp_set_header(resp, "x-ratelimit-remaining", buf);
    }
}
