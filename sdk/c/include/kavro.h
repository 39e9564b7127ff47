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
 * NUL-terminated and live until the request ends: until its post phase has
 * returned, if the plugin has one, or else until a phase of another request
 * runs on this instance. Never free them. `kavro_state(size)` gives the
 * request a zeroed block that lives through all of the request's phases,
 * post included, and the next request gets afresh.
 *
 * Every function here must be called from within a phase. The calls that
 * the host may refuse return false (or NULL) and drop the host's message;
 * for the message, call the generated function instead (plugin.h, e.g.
 * kavro_plugin_kv_set, whose `err` says denied / invalid / unavailable).
 */
#ifndef KAVRO_H
#define KAVRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

/* The host's handles on the request and the response head, borrowed for
 * the phase call: valid until the phase returns; do not keep them. */
typedef kavro_plugin_types_borrow_request_t kavro_request;
typedef kavro_plugin_types_borrow_response_t kavro_response;

/* Names the plugin: its name, version and the capabilities it needs,
 * comma-separated ("kv,metrics"), or "" for none. Once, at file scope. */
#define KAVRO_PLUGIN(NAME, VERSION, CAPABILITIES)                    \
    const char *const kavro__name = (NAME);                          \
    const char *const kavro__version = (VERSION);                    \
    const char *const kavro__capabilities = (CAPABILITIES)

/* The `!>` file directives the plugin answers, comma-separated ("tmpl" or
 * "tmpl,nonce"). Once, at file scope, beside KAVRO_PLUGIN; without it the
 * plugin answers none. A plugin that answers any runs in present only
 * where a static file's directive line names it (its other phases run as
 * usual); kavro_present_directive() then says which. */
#define KAVRO_ANSWERS(DIRECTIVES) const char *const kavro__directives = (DIRECTIVES)

/* A response a plugin produces. Build with kavro_reply_new(), add to it,
 * and return it with kavro_respond(), which takes it over: there is no
 * free, so build one only to return it. */
typedef struct kavro_reply kavro_reply;
/* A new reply with `status`, no headers and an empty body. Never NULL. */
kavro_reply *kavro_reply_new(uint16_t status);
/* Adds a header (copied; several of one name are kept). */
void kavro_reply_header(kavro_reply *r, const char *name, const char *value);
/* Sets the body to `len` bytes copied from `body`, replacing any before. */
void kavro_reply_body(kavro_reply *r, const void *body, size_t len);
/* Sets the body to the NUL-terminated `text`, without its NUL. */
void kavro_reply_text(kavro_reply *r, const char *text);
/* From prepare, on a route that caches: store the reply `ms` milliseconds
 * whatever the route says / never store it. The last of the two called
 * wins; neither leaves it to the route and the reply's Cache-Control.
 * Ignored from prime, which answers before the cache. */
void kavro_reply_cache_ms(kavro_reply *r, uint64_t ms);
void kavro_reply_no_store(kavro_reply *r);

/* What a phase decides. Made by the functions below, not by hand. */
typedef struct kavro_outcome {
    int kind;
    const char *text; /* rewrite URI, forward upstream */
    const char *uri;  /* forward URI, or NULL */
    kavro_reply *reply;
    const uint8_t *body; /* present: the new body */
    size_t len;
} kavro_outcome;

/* The outcomes, and the phases that may return each; from another phase,
 * an outcome counts as that phase's default (continue, decline, keep).
 * The strings and body they point to are copied after the phase returns:
 * they must outlive it (a literal, a string from the SDK, a global buffer;
 * not a local array of the phase function). */
kavro_outcome kavro_continue(void);               /* prime: go on to the cache and routing */
kavro_outcome kavro_rewrite(const char *uri);     /* prime: routing sees this path and query */
kavro_outcome kavro_respond(kavro_reply *reply);  /* prime, prepare: answer with `reply` (taken over) */
kavro_outcome kavro_decline(void);                /* prepare: let the route's own action run */
/* prepare: hand the request to `upstream` (declared in the host's config),
 * with `uri` as its path and query, or NULL to keep the request's. */
kavro_outcome kavro_forward(const char *upstream, const char *uri);
kavro_outcome kavro_keep(void);                   /* present: keep the body */
kavro_outcome kavro_replace(const void *body, size_t len); /* present: send these `len` bytes instead (not freed by the SDK) */

/* The phases: define the ones the plugin implements. */
/* Before the cache and routing. Returns continue, rewrite or respond. */
kavro_outcome kavro_prime(kavro_request req);
/* Produces the route's response. Returns decline, respond or forward. */
kavro_outcome kavro_prepare(kavro_request req);
/* A buffered response body: `body` is `len` bytes, valid during the call
 * (kavro_replace may point into it). Returns keep or replace. Also called
 * for a `!>` directive the plugin answers: see kavro_present_directive. */
kavro_outcome kavro_present(kavro_request req, kavro_response resp, const uint8_t *body, size_t len);
/* A `!>` directive that named the plugin, from a static file's first line:
 * `!> tmpl header.html &> nonce` is two directives, `tmpl` with the one
 * argument "header.html" and `nonce` with none. */
typedef struct kavro_directive {
    const char *name;        /* "tmpl" */
    const char *const *args; /* its arguments, `nargs` of them */
    size_t nargs;
} kavro_directive;
/* In kavro_present: the directive this call is for, or NULL for an
 * ordinary present call (and outside present). It and its strings live
 * until the request ends. */
const kavro_directive *kavro_present_directive(void);
/* The headers of every response, errors and cache hits included. */
void kavro_package(kavro_request req, kavro_response resp);
/* What the host knows once the response has been written. */
typedef struct kavro_completion {
    uint16_t status;      /* the status sent; 0 if no response was written */
    uint64_t duration_us; /* how long the request took */
    uint64_t bytes_sent;  /* bytes sent to the client */
} kavro_completion;
/* After the response is written; `req` and `resp` are read-only and,
 * like `done`, valid until it returns. The request's state and strings
 * are freed when it returns. */
void kavro_post(kavro_request req, kavro_response resp, const kavro_completion *done);

/* This request's state: at least `size` zeroed bytes, the same block in
 * every phase of the request, post included, freed when the request ends
 * (see above). Asking for more than before grows it (kept, the rest
 * zeroed) and moves it: a pointer from an earlier call is then stale. Use
 * one size. */
void *kavro_state(size_t size);

/* The request and response heads. Strings live until the request ends. */
/* The method ("GET", ...). Never NULL. */
const char *kavro_req_method(kavro_request req);
/* The path, without the query. Never NULL. */
const char *kavro_req_path(kavro_request req);
/* The client's IP address as the listener saw it. Never NULL. */
const char *kavro_req_client_ip(kavro_request req);
/* The first value of header `name` (any case); NULL: no such header. */
const char *kavro_req_header(kavro_request req, const char *name);
/* Sets header `name` to `value`, replacing every value it had. False when
 * the host refuses: outside prime and prepare, a name or value HTTP does
 * not allow, or past the plugin's limits.max_headers added in one call. */
bool kavro_req_set_header(kavro_request req, const char *name, const char *value);
/* The response's status. */
uint16_t kavro_resp_status(kavro_response resp);
/* The first value of response header `name` (any case); NULL: none. */
const char *kavro_resp_header(kavro_response resp, const char *name);
/* Sets response header `name` to `value`, replacing every value it had.
 * False when the host refuses: outside package and present (in present,
 * once the head has gone), a bad name or value, past limits.max_headers. */
bool kavro_resp_set_header(kavro_response resp, const char *name, const char *value);
/* Adds a value of response header `name` beside the others. False as for
 * kavro_resp_set_header. */
bool kavro_resp_append_header(kavro_response resp, const char *name, const char *value);
/* Sets the response's status: a final one, 200-599 except 204 and 304
 * (which carry no body). False when the host refuses: another status, or
 * where kavro_resp_set_header would be refused. */
bool kavro_resp_set_status(kavro_response resp, uint16_t status);

/* Host imports. Calls that can be refused return false (denied, invalid,
 * unavailable) or NULL, and drop the host's message. */
/* Writes `message` to the host's log, tagged with the plugin and the
 * request id; `level` is one of KAVRO_PLUGIN_TYPES_LEVEL_TRACE, _DEBUG,
 * _INFO, _WARN, _ERROR. Always available; keeps the first 16 KiB. */
void kavro_log(int level, const char *message); /* KAVRO_PLUGIN_TYPES_LEVEL_* */
/* The plugin's config value `key` (from [plugins.config]); NULL: not set.
 * Always available. */
const char *kavro_config(const char *key);      /* NULL: not set */
/* The KV value stored under `key` (capability "kv"), as a NUL-terminated
 * string; NULL: absent, expired, or refused (not granted, key over 1024
 * bytes). */
const char *kavro_kv_get(const char *key);      /* NULL: absent or refused */
/* Stores the string `value` (without its NUL) under `key` for `ttl_ms`
 * milliseconds, 0 until deleted. False: refused (not granted, key over
 * 1024 bytes, value over 1 MiB, the store full). */
bool kavro_kv_set(const char *key, const char *value, uint64_t ttl_ms); /* 0: no ttl */
/* Adds `delta` to the counter under `key` atomically (a missing key counts
 * as 0; `ttl_ms`, 0 for none, applies when it is created) and stores the
 * new value in `*value` (not NULL). False, `*value` untouched: refused (not
 * granted, a bad key, the value not a counter, overflow, the store full). */
bool kavro_kv_increment(const char *key, int64_t delta, uint64_t ttl_ms, int64_t *value);

/* Reports a failure of the plugin's code on the current request (in post,
 * the completion being handled): the host logs `message`, shows it on
 * GET /plugins and counts a failure; then aborts, so the call traps and the
 * host applies the plugin's failure policy and replaces the instance. In
 * post, the rest of the batch does not run. */
_Noreturn void kavro_fail(const char *message);

#endif
