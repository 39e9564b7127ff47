/* package: copies request header x-in to response header x-out. */
#include "kavro.h"

KAVRO_PLUGIN("echo-header", "0.1.0", "");

void kavro_package(kavro_request req, kavro_response resp) {
    const char *v = kavro_req_header(req, "x-in");
    kavro_resp_set_header(resp, "x-out", v ? v : "");
}
