// HTML rewriter.
//
// present: in HTML responses, upgrades `http://` links to `https://` for the
// hosts listed in the `upgrade_hosts` config value (comma-separated), and
// inserts the `banner` config value (if any) right after <body>. Each page
// rewritten is counted in the KV store. package: says how many links were
// upgraded (`x-links-upgraded`) and the running page count (`x-pages-rewritten`).
import { config, kv, type Plugin } from "kavro";

interface State extends Record<string, unknown> {
  upgraded?: number;
  pages?: number;
}

const decoder = new TextDecoder();

const plugin: Plugin<State> = {
  name: "html-rewrite",
  version: "0.1.0",
  capabilities: ["kv"],

  present(state, _req, resp, body) {
    const type = resp.header("content-type") ?? "";
    if (!type.startsWith("text/html")) return;
    let html = decoder.decode(body);
    const hosts = (config.get("upgrade_hosts") ?? "")
      .split(",")
      .map((h) => h.trim())
      .filter((h) => h.length > 0);
    let upgraded = 0;
    for (const host of hosts) {
      const from = `http://${host}`;
      const parts = html.split(from);
      upgraded += parts.length - 1;
      html = parts.join(`https://${host}`);
    }
    const banner = config.get("banner");
    if (banner) html = html.replace(/<body([^>]*)>/i, `<body$1>${banner}`);
    state.upgraded = upgraded;
    state.pages = kv.increment("pages", 1);
    return html;
  },

  package(state, _req, resp) {
    if (state.pages === undefined) return;
    resp.setHeader("x-links-upgraded", String(state.upgraded ?? 0));
    resp.setHeader("x-pages-rewritten", String(state.pages));
  },
};

export default plugin;
