/* Write Kavro plugins in C.
 *
 * Define the phases you need, name your plugin, and build with
 * `kavro-c build plugin.c -o plugin.wasm` (see sdk/c/README.md):
 *
 *   #include "kavro.h"
 *
 *   KAVRO_PLUGIN("hello", "0.1.0", "");
 *
 *   void kavro_package(kavro_request req, kavro_response resp) {
 *       kavro_resp_set_header(resp, "x-hello", "world");
 *   }
 *
 * Strings the SDK hands out (header values, config values, ...) are
 * NUL-terminated and live until the request ends (its post phase, if the
 * plugin has one): never free them. `kavro_state(size)` gives the request a
 * zeroed block that every phase of that request sees, and the next request
 * gets afresh.
 */
#ifndef KAVRO_H
#define KAVRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

typedef kavro_plugin_types_borrow_request_t kavro_request;
typedef kavro_plugin_types_borrow_response_t kavro_response;

/* Names the plugin: its name, version and the capabilities it needs,
 * comma-separated ("kv,metrics"), or "" for none. */
#define KAVRO_PLUGIN(NAME, VERSION, CAPABILITIES)                    \
    const char *const kavro__name = (NAME);                          \
    const char *const kavro__version = (VERSION);                    \
    const char *const kavro__capabilities = (CAPABILITIES)

/* A response a plugin produces. Build with kavro_reply(), then add to it. */
typedef struct kavro_reply kavro_reply;
kavro_reply *kavro_reply_new(uint16_t status);
void kavro_reply_header(kavro_reply *r, const char *name, const char *value);
void kavro_reply_body(kavro_reply *r, const void *body, size_t len);
void kavro_reply_text(kavro_reply *r, const char *text);
/* From prepare, on a route that caches: store this long / never store. */
void kavro_reply_cache_ms(kavro_reply *r, uint64_t ms);
void kavro_reply_no_store(kavro_reply *r);

/* What a phase decides. */
typedef struct kavro_outcome {
    int kind;
    const char *text; /* rewrite URI, forward upstream */
    const char *uri;  /* forward URI, or NULL */
    kavro_reply *reply;
    const uint8_t *body; /* present: the new body */
    size_t len;
} kavro_outcome;

kavro_outcome kavro_continue(void);               /* prime */
kavro_outcome kavro_rewrite(const char *uri);     /* prime */
kavro_outcome kavro_respond(kavro_reply *reply);  /* prime, prepare */
kavro_outcome kavro_decline(void);                /* prepare */
kavro_outcome kavro_forward(const char *upstream, const char *uri); /* prepare */
kavro_outcome kavro_keep(void);                   /* present */
kavro_outcome kavro_replace(const void *body, size_t len); /* present */

/* The phases: define the ones the plugin implements. */
kavro_outcome kavro_prime(kavro_request req);
kavro_outcome kavro_prepare(kavro_request req);
kavro_outcome kavro_present(kavro_request req, kavro_response resp, const uint8_t *body, size_t len);
void kavro_package(kavro_request req, kavro_response resp);
typedef struct kavro_completion {
    uint16_t status;
    uint64_t duration_us;
    uint64_t bytes_sent;
} kavro_completion;
void kavro_post(kavro_request req, kavro_response resp, const kavro_completion *done);

/* This request's state: `size` zeroed bytes, the same block in every phase. */
void *kavro_state(size_t size);

/* The request and response heads. NULL: no such header. */
const char *kavro_req_method(kavro_request req);
const char *kavro_req_path(kavro_request req);
const char *kavro_req_client_ip(kavro_request req);
const char *kavro_req_header(kavro_request req, const char *name);
bool kavro_req_set_header(kavro_request req, const char *name, const char *value);
uint16_t kavro_resp_status(kavro_response resp);
const char *kavro_resp_header(kavro_response resp, const char *name);
bool kavro_resp_set_header(kavro_response resp, const char *name, const char *value);
bool kavro_resp_append_header(kavro_response resp, const char *name, const char *value);

/* Host imports. Calls that can be refused return false (denied, invalid). */
void kavro_log(int level, const char *message); /* KAVRO_PLUGIN_TYPES_LEVEL_* */
const char *kavro_config(const char *key);      /* NULL: not set */
const char *kavro_kv_get(const char *key);      /* NULL: absent or refused */
bool kavro_kv_set(const char *key, const char *value, uint64_t ttl_ms); /* 0: no ttl */
bool kavro_kv_increment(const char *key, int64_t delta, uint64_t ttl_ms, int64_t *value);

/* Reports a failure of the plugin's code on the current request (in post,
 * the completion being handled): the host logs `message`, shows it on
 * GET /plugins and counts a failure; then aborts, so the call traps and the
 * host applies the plugin's failure policy. */
_Noreturn void kavro_fail(const char *message);

#endif
