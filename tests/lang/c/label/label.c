/* Answers the `!>` directive `label`: `!> label a b` prefixes the page
 * with `label:a,b:`; with no argument, a 500 saying so. */
#include <stdlib.h>
#include <string.h>

#include "kavro.h"

KAVRO_PLUGIN("label", "0.1.0", "");
KAVRO_ANSWERS("label");

/* The page last made; freed when the next one is. */
static char *page;

kavro_outcome kavro_present(kavro_request req, kavro_response resp, const uint8_t *body, size_t len) {
    const kavro_directive *d = kavro_present_directive();
    if (d == NULL) return kavro_keep();
    if (d->nargs == 0) {
        kavro_resp_set_status(resp, 500);
        static const char msg[] = "which label?";
        return kavro_replace(msg, sizeof msg - 1);
    }
    size_t size = strlen(d->name) + 2 + len;
    for (size_t i = 0; i < d->nargs; i++) size += strlen(d->args[i]) + 1;
    free(page);
    page = malloc(size);
    if (page == NULL) return kavro_keep();
    char *at = page;
    at = stpcpy(at, d->name);
    *at++ = ':';
    for (size_t i = 0; i < d->nargs; i++) {
        if (i > 0) *at++ = ',';
        at = stpcpy(at, d->args[i]);
    }
    *at++ = ':';
    memcpy(at, body, len);
    at += len;
    return kavro_replace(page, (size_t)(at - page));
}
