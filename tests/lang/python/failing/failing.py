"""A plugin whose code fails on purpose: in prime on /raise, in post on
/raise-post. The operator must see the exception and its traceback."""
import kavro


class Failing(kavro.Plugin):
    name = "failing"
    version = "0.1.0"

    def prime(self, state, req):
        state["path"] = req.path()
        if state["path"] == "/raise":
            raise ValueError("failing on purpose in prime")

    def post(self, state, req, resp, done):
        if state["path"] == "/raise-post":
            raise ValueError("failing on purpose in post")


kavro.export(Failing)
