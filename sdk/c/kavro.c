/* The C SDK's glue between the idiomatic API in kavro.h and the bindings
 * wit-bindgen generates (plugin.h). Which phases are exported is decided by
 * the build (KAVRO_PHASE_* defines), from the functions the plugin defines.
 *
 * Memory: what the host hands us (strings, bodies) is ours to free; what we
 * return must be malloc'd, since the bindings free it after the call.
 * Borrowed request/response handles are dropped before each export returns. */
#include <stdlib.h>
#include <string.h>

#include "kavro.h"

extern const char *const kavro__name;
extern const char *const kavro__version;
extern const char *const kavro__capabilities;
/* KAVRO_ANSWERS defines it; a plugin without it answers no directive (a
 * weak reference: its address is NULL when no source defines it). */
extern const char *const kavro__directives __attribute__((weak));

enum { K_CONTINUE, K_REWRITE, K_RESPOND, K_DECLINE, K_FORWARD, K_KEEP, K_REPLACE };

/* ---- per-request memory: an arena and the state block ---- */

/* One request at a time: the host keeps an instance for a request from its
 * first phase to its post, and runs post before the instance serves another
 * request. So one slot: the memory of the request whose seq is `slot_seq`. */
static bool slot_used;
static uint64_t slot_seq;
static void **arena;
static size_t arena_len, arena_cap;
static void *state;
static size_t state_size;
static uint64_t current_seq; /* the request of the running phase (kavro_fail) */

static void *keep(void *p) {
    if (arena_len == arena_cap) {
        arena_cap = arena_cap ? arena_cap * 2 : 16;
        arena = realloc(arena, arena_cap * sizeof *arena);
    }
    arena[arena_len++] = p;
    return p;
}

/* Frees the slot's strings and state: the slot is empty afterwards. */
static void reset(void) {
    for (size_t i = 0; i < arena_len; i++) free(arena[i]);
    arena_len = 0;
    free(state);
    state = NULL;
    state_size = 0;
    slot_used = false;
}

/* Called at the start of every phase (and of each completion in post): a
 * new seq is a new request, which gets the slot afresh. */
static void begin(uint64_t seq) {
    current_seq = seq;
    if (slot_used && slot_seq == seq) return;
    reset();
    slot_used = true;
    slot_seq = seq;
}

void *kavro_state(size_t size) {
    if (state == NULL || state_size < size) {
        void *bigger = calloc(1, size);
        if (state) memcpy(bigger, state, state_size);
        free(state);
        state = bigger;
        state_size = size;
    }
    return state;
}

/* A host string as a NUL-terminated C string that lives until the request ends. */
static const char *own(plugin_string_t *s) {
    char *c = realloc(s->ptr, s->len + 1);
    c[s->len] = '\0';
    return keep(c);
}

/* Not every plugin exports every phase: helpers some builds leave unused. */
#define KAVRO_MAYBE_UNUSED __attribute__((unused))

KAVRO_MAYBE_UNUSED static void done_with(kavro_request req) { kavro_plugin_types_request_drop_borrow(req); }
KAVRO_MAYBE_UNUSED static void done_with_both(kavro_request req, kavro_response resp) {
    kavro_plugin_types_request_drop_borrow(req);
    kavro_plugin_types_response_drop_borrow(resp);
}

static plugin_string_t borrow(const char *c) {
    plugin_string_t s = {(uint8_t *)c, strlen(c)};
    return s;
}

static plugin_string_t dup(const char *c) {
    size_t n = strlen(c);
    uint8_t *p = malloc(n ? n : 1);
    memcpy(p, c, n);
    plugin_string_t s = {p, n};
    return s;
}

/* ---- replies and outcomes ---- */

struct kavro_reply {
    kavro_plugin_types_reply_t r;
};

kavro_reply *kavro_reply_new(uint16_t status) {
    kavro_reply *r = calloc(1, sizeof *r);
    r->r.status = status;
    return r;
}

void kavro_reply_header(kavro_reply *r, const char *name, const char *value) {
    kavro_plugin_types_list_header_t *h = &r->r.headers;
    h->ptr = realloc(h->ptr, (h->len + 1) * sizeof *h->ptr);
    h->ptr[h->len].f0 = dup(name);
    h->ptr[h->len].f1 = dup(value);
    h->len++;
}

void kavro_reply_body(kavro_reply *r, const void *body, size_t len) {
    free(r->r.body.ptr);
    r->r.body.ptr = malloc(len ? len : 1);
    memcpy(r->r.body.ptr, body, len);
    r->r.body.len = len;
}

void kavro_reply_text(kavro_reply *r, const char *text) { kavro_reply_body(r, text, strlen(text)); }

void kavro_reply_cache_ms(kavro_reply *r, uint64_t ms) {
    r->r.cache.is_some = true;
    r->r.cache.val.tag = KAVRO_PLUGIN_TYPES_CACHE_DIRECTIVE_TTL_MS;
    r->r.cache.val.val.ttl_ms = ms;
}

void kavro_reply_no_store(kavro_reply *r) {
    r->r.cache.is_some = true;
    r->r.cache.val.tag = KAVRO_PLUGIN_TYPES_CACHE_DIRECTIVE_NO_STORE;
}

/* Hands the built reply over to the bindings, which free it after the call. */
KAVRO_MAYBE_UNUSED static kavro_plugin_types_reply_t take(kavro_reply *r) {
    kavro_plugin_types_reply_t out = r->r;
    free(r);
    return out;
}

kavro_outcome kavro_continue(void) { return (kavro_outcome){.kind = K_CONTINUE}; }
kavro_outcome kavro_rewrite(const char *uri) { return (kavro_outcome){.kind = K_REWRITE, .text = uri}; }
kavro_outcome kavro_respond(kavro_reply *reply) { return (kavro_outcome){.kind = K_RESPOND, .reply = reply}; }
kavro_outcome kavro_decline(void) { return (kavro_outcome){.kind = K_DECLINE}; }
kavro_outcome kavro_forward(const char *upstream, const char *uri) {
    return (kavro_outcome){.kind = K_FORWARD, .text = upstream, .uri = uri};
}
kavro_outcome kavro_keep(void) { return (kavro_outcome){.kind = K_KEEP}; }
kavro_outcome kavro_replace(const void *body, size_t len) {
    return (kavro_outcome){.kind = K_REPLACE, .body = body, .len = len};
}

/* ---- exports ---- */

/* The items of a comma-separated list ("kv, metrics"), trimmed, empty
 * ones left out. */
static plugin_list_string_t split(const char *p) {
    plugin_list_string_t list = {NULL, 0};
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n && *p == ' ') p++, n--;
        while (n && p[n - 1] == ' ') n--;
        if (n) {
            list.ptr = realloc(list.ptr, (list.len + 1) * sizeof *list.ptr);
            list.ptr[list.len].ptr = malloc(n);
            memcpy(list.ptr[list.len].ptr, p, n);
            list.ptr[list.len].len = n;
            list.len++;
        }
        if (!end) break;
        p = end + 1;
    }
    return list;
}

void exports_kavro_plugin_plugin_describe(exports_kavro_plugin_plugin_manifest_t *ret) {
    ret->name = dup(kavro__name);
    ret->version = dup(kavro__version);
    ret->capabilities = split(kavro__capabilities);
    ret->directives = split(&kavro__directives != NULL ? kavro__directives : "");
}

#ifdef KAVRO_PHASE_PRIME
void exports_kavro_plugin_prime_on_request(uint64_t seq, exports_kavro_plugin_prime_borrow_request_t req,
                                           exports_kavro_plugin_prime_outcome_t *ret) {
    begin(seq);
    kavro_outcome o = kavro_prime(req);
    done_with(req);
    switch (o.kind) {
    case K_REWRITE:
        ret->tag = EXPORTS_KAVRO_PLUGIN_PRIME_OUTCOME_REWRITE;
        ret->val.rewrite = dup(o.text);
        break;
    case K_RESPOND:
        ret->tag = EXPORTS_KAVRO_PLUGIN_PRIME_OUTCOME_RESPOND;
        ret->val.respond = take(o.reply);
        break;
    default:
        ret->tag = EXPORTS_KAVRO_PLUGIN_PRIME_OUTCOME_CONTINUE;
    }
}
#endif

#ifdef KAVRO_PHASE_PREPARE
void exports_kavro_plugin_prepare_on_prepare(uint64_t seq, exports_kavro_plugin_prepare_borrow_request_t req,
                                             exports_kavro_plugin_prepare_outcome_t *ret) {
    begin(seq);
    kavro_outcome o = kavro_prepare(req);
    done_with(req);
    switch (o.kind) {
    case K_RESPOND:
        ret->tag = EXPORTS_KAVRO_PLUGIN_PREPARE_OUTCOME_RESPOND;
        ret->val.respond = take(o.reply);
        break;
    case K_FORWARD:
        ret->tag = EXPORTS_KAVRO_PLUGIN_PREPARE_OUTCOME_FORWARD;
        ret->val.forward.upstream = dup(o.text);
        ret->val.forward.uri.is_some = o.uri != NULL;
        if (o.uri) ret->val.forward.uri.val = dup(o.uri);
        ret->val.forward.headers.ptr = NULL;
        ret->val.forward.headers.len = 0;
        break;
    default:
        ret->tag = EXPORTS_KAVRO_PLUGIN_PREPARE_OUTCOME_DECLINE;
    }
}
#endif

/* The directive of the running present call, if a `!>` line named the
 * plugin; its strings are the request's. */
static const kavro_directive *directive;

const kavro_directive *kavro_present_directive(void) { return directive; }

#ifdef KAVRO_PHASE_PRESENT
/* `args`: a `!>` directive's name, then its arguments; empty for an
 * ordinary present call. */
void exports_kavro_plugin_present_on_body(uint64_t seq, exports_kavro_plugin_present_borrow_request_t req,
                                          exports_kavro_plugin_present_borrow_response_t resp,
                                          plugin_list_u8_t *body, plugin_list_string_t *args,
                                          exports_kavro_plugin_present_outcome_t *ret) {
    begin(seq);
    if (args->len > 0) {
        /* The strings become the request's (own); the list goes now. */
        const char **list = keep(malloc(args->len * sizeof *list));
        for (size_t i = 0; i < args->len; i++) list[i] = own(&args->ptr[i]);
        kavro_directive *d = keep(malloc(sizeof *d));
        d->name = list[0];
        d->args = list + 1;
        d->nargs = args->len - 1;
        directive = d;
        free(args->ptr);
        args->ptr = NULL;
        args->len = 0;
    }
    kavro_outcome o = kavro_present(req, resp, body->ptr, body->len);
    directive = NULL;
    done_with_both(req, resp);
    if (o.kind == K_REPLACE) {
        ret->tag = EXPORTS_KAVRO_PLUGIN_PRESENT_OUTCOME_REPLACE;
        ret->val.replace.ptr = malloc(o.len ? o.len : 1);
        memcpy(ret->val.replace.ptr, o.body, o.len);
        ret->val.replace.len = o.len;
    } else {
        ret->tag = EXPORTS_KAVRO_PLUGIN_PRESENT_OUTCOME_KEEP;
    }
    plugin_list_u8_free(body);
    plugin_list_string_free(args);
}
#endif

#ifdef KAVRO_PHASE_PACKAGE
void exports_kavro_plugin_package_on_response(uint64_t seq, exports_kavro_plugin_package_borrow_request_t req,
                                              exports_kavro_plugin_package_borrow_response_t resp) {
    begin(seq);
    kavro_package(req, resp);
    done_with_both(req, resp);
}
#endif

#ifdef KAVRO_PHASE_POST
/* Each completion runs with its request's state if the slot holds it (its
 * earlier phases ran here), else a fresh one; the state goes afterwards. */
void exports_kavro_plugin_post_on_complete(exports_kavro_plugin_post_list_completed_t *batch) {
    for (size_t i = 0; i < batch->len; i++) {
        exports_kavro_plugin_post_completed_t *c = &batch->ptr[i];
        begin(c->seq);
        kavro_completion done = {c->done.status, c->done.duration_us, c->done.bytes_sent};
        kavro_post(kavro_plugin_types_borrow_request(c->req), kavro_plugin_types_borrow_response(c->resp), &done);
        kavro_plugin_types_request_drop_own(c->req);
        kavro_plugin_types_response_drop_own(c->resp);
        reset();
    }
    exports_kavro_plugin_post_list_completed_free(batch);
}
#endif

/* ---- heads ---- */

const char *kavro_req_method(kavro_request req) {
    plugin_string_t s;
    kavro_plugin_types_method_request_method(req, &s);
    return own(&s);
}

const char *kavro_req_path(kavro_request req) {
    plugin_string_t s;
    kavro_plugin_types_method_request_path(req, &s);
    return own(&s);
}

const char *kavro_req_client_ip(kavro_request req) {
    plugin_string_t s;
    kavro_plugin_types_method_request_client_ip(req, &s);
    return own(&s);
}

const char *kavro_req_header(kavro_request req, const char *name) {
    plugin_string_t n = borrow(name), v;
    return kavro_plugin_types_method_request_header(req, &n, &v) ? own(&v) : NULL;
}

/* A head mutation's result; a refusal's error is freed. */
static bool head_changed(bool ok, kavro_plugin_types_host_error_t *err) {
    if (!ok) kavro_plugin_types_host_error_free(err);
    return ok;
}

bool kavro_req_set_header(kavro_request req, const char *name, const char *value) {
    plugin_string_t n = borrow(name), v = borrow(value);
    kavro_plugin_types_host_error_t err;
    return head_changed(kavro_plugin_types_method_request_set_header(req, &n, &v, &err), &err);
}

uint16_t kavro_resp_status(kavro_response resp) { return kavro_plugin_types_method_response_status(resp); }

const char *kavro_resp_header(kavro_response resp, const char *name) {
    plugin_string_t n = borrow(name), v;
    return kavro_plugin_types_method_response_header(resp, &n, &v) ? own(&v) : NULL;
}

bool kavro_resp_set_header(kavro_response resp, const char *name, const char *value) {
    plugin_string_t n = borrow(name), v = borrow(value);
    kavro_plugin_types_host_error_t err;
    return head_changed(kavro_plugin_types_method_response_set_header(resp, &n, &v, &err), &err);
}

bool kavro_resp_append_header(kavro_response resp, const char *name, const char *value) {
    plugin_string_t n = borrow(name), v = borrow(value);
    kavro_plugin_types_host_error_t err;
    return head_changed(kavro_plugin_types_method_response_append_header(resp, &n, &v, &err), &err);
}

bool kavro_resp_set_status(kavro_response resp, uint16_t status) {
    kavro_plugin_types_host_error_t err;
    return head_changed(kavro_plugin_types_method_response_set_status(resp, status, &err), &err);
}

/* ---- host imports ---- */

void kavro_log(int level, const char *message) {
    plugin_string_t m = borrow(message);
    kavro_plugin_log_log((kavro_plugin_log_level_t)level, &m);
}

void kavro_fail(const char *message) {
    plugin_string_t m = borrow(message);
    kavro_plugin_log_fail(current_seq, &m);
    abort();
}

const char *kavro_config(const char *key) {
    plugin_string_t k = borrow(key), v;
    return kavro_plugin_config_get(&k, &v) ? own(&v) : NULL;
}

const char *kavro_kv_get(const char *key) {
    plugin_string_t k = borrow(key);
    plugin_option_list_u8_t v;
    kavro_plugin_kv_host_error_t err;
    if (!kavro_plugin_kv_get(&k, &v, &err)) {
        kavro_plugin_kv_host_error_free(&err);
        return NULL;
    }
    if (!v.is_some) return NULL;
    plugin_string_t s = {v.val.ptr, v.val.len};
    return own(&s);
}

bool kavro_kv_set(const char *key, const char *value, uint64_t ttl_ms) {
    plugin_string_t k = borrow(key);
    plugin_list_u8_t v = {(uint8_t *)value, strlen(value)};
    kavro_plugin_kv_host_error_t err;
    if (kavro_plugin_kv_set(&k, &v, ttl_ms ? &ttl_ms : NULL, &err)) return true;
    kavro_plugin_kv_host_error_free(&err);
    return false;
}

bool kavro_kv_increment(const char *key, int64_t delta, uint64_t ttl_ms, int64_t *value) {
    plugin_string_t k = borrow(key);
    kavro_plugin_kv_host_error_t err;
    if (kavro_plugin_kv_increment(&k, delta, ttl_ms ? &ttl_ms : NULL, value, &err)) return true;
    kavro_plugin_kv_host_error_free(&err);
    return false;
}
