"""A/B cookie assigner.

prime: a request without an `ab` cookie is assigned a variant, spread by
the `b_percent` config value (default 50) with a counter in the host's KV
store, and the upstream sees it as `x-ab-variant`; a request with the
cookie keeps its variant. package: a new assignment is sent back as a
cookie, and every response says which variant it served. The KV store also
counts how many were assigned to each variant (`assigned-a`, `assigned-b`).
"""

import kavro


def cookie(req, name):
    for header in req.header_all("cookie"):
        for part in header.split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
    return None


class AbTest(kavro.Plugin):
    name = "ab-test"
    version = "0.1.0"
    capabilities = ["kv"]

    def __init__(self):
        self.b_percent = int(kavro.config.get("b_percent") or "50")

    def prime(self, state, req):
        variant = cookie(req, "ab")
        if variant not in ("a", "b"):
            n = kavro.kv.increment("assigned", 1, None)
            # Spread evenly: B gets the n-th request when its share crosses a whole unit.
            variant = "b" if (n * self.b_percent) // 100 != ((n - 1) * self.b_percent) // 100 else "a"
            kavro.kv.increment(f"assigned-{variant}", 1, None)
            state["new"] = True
        state["variant"] = variant
        req.set_header("x-ab-variant", variant)

    def package(self, state, req, resp):
        variant = state.get("variant")
        if variant is None:
            return
        resp.set_header("x-ab-variant", variant)
        if state.get("new"):
            resp.append_header("set-cookie", f"ab={variant}; Path=/; Max-Age=2592000; SameSite=Lax")


kavro.export(AbTest)
