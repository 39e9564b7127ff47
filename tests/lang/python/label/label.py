"""Answers the `!>` directive `label`: `!> label a b` prefixes the page
with `label:a,b:`; with no argument, a 500 saying so."""
import kavro


class Label(kavro.Plugin):
    name = "label"
    version = "0.1.0"
    directives = ["label"]

    def directive(self, state, req, resp, body, directive):
        if not directive.args:
            resp.set_status(500)
            return "which label?"
        return f"{directive.name}:{','.join(directive.args)}:" + body.decode()


kavro.export(Label)
