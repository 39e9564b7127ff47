// Answers the `!>` directive `label`: `!> label a b` prefixes the page
// with `label:a,b:`; with no argument, a 500 saying so.
import type { Plugin } from "kavro";

const plugin: Plugin = {
  name: "label",
  version: "0.1.0",
  directives: ["label"],
  directive(_state, _req, resp, body, { name, args }) {
    if (args.length === 0) {
      resp.setStatus(500);
      return "which label?";
    }
    return `${name}:${args.join(",")}:` + new TextDecoder().decode(body);
  },
};
export default plugin;
