/* A plugin whose code fails on purpose: in prime on /raise, in post on
 * /raise-post. The operator must see what kavro_fail reports. */
#include <string.h>
#include "kavro.h"

KAVRO_PLUGIN("failing", "0.1.0", "");

kavro_outcome kavro_prime(kavro_request req) {
    if (strcmp(kavro_req_path(req), "/raise") == 0) kavro_fail("failing on purpose in prime");
    return kavro_continue();
}

void kavro_post(kavro_request req, kavro_response resp, const kavro_completion *done) {
    (void)resp;
    (void)done;
    if (strcmp(kavro_req_path(req), "/raise-post") == 0) kavro_fail("failing on purpose in post");
}
