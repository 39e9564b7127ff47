"""package: copies request header x-in to response header x-out."""
import kavro


class Echo(kavro.Plugin):
    name = "echo-header"
    version = "0.1.0"

    def package(self, state, req, resp):
        resp.set_header("x-out", req.header("x-in") or "")


kavro.export(Echo)
