// package: copies request header x-in to response header x-out.
import type { Plugin } from "kavro";

const echo: Plugin = {
  name: "echo-header",
  version: "0.1.0",
  package(_state, req, resp) {
    resp.setHeader("x-out", req.header("x-in") ?? "");
  },
};
export default echo;
