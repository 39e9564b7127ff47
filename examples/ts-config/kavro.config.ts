// The reference site in TypeScript: static assets, an API behind an
// upstream, a health check, and PHP over FastCGI (php-fpm sees the site
// under /var/www/html). Compile it to the graph kavro-host serves:
//
//   sdk/config/kavro compile --config examples/ts-config/kavro.config.ts --out .kavro/route-graph.json
//
// kavro.toml beside it is the same site in TOML: both compile to the same
// bytes.
import {
  defineConfig,
  fastCgi,
  fastCgiUpstream,
  proxy,
  respond,
  route,
  server,
  staticFiles,
  upstream,
} from "kavro/config";

export default defineConfig({
  upstreams: [
    upstream("app", "http://127.0.0.1:3000"),
    fastCgiUpstream("php-fpm", "unix:/run/php/php8.2-fpm.sock"),
  ],
  servers: [
    server({
      listen: 8080,
      hostnames: ["localhost"],
      routes: [
        route("/assets/*", staticFiles("./dist/assets", { stripPrefix: "/assets" })),
        route("/api/*", proxy("app")),
        route("/health", respond("ok")),
        route(
          "/*.php",
          fastCgi("php-fpm", "./wordpress", {
            scriptRoot: "/var/www/html",
            index: ["index.php"],
            cache: { ttlMs: 5000, statuses: [200] },
          }),
        ),
      ],
    }),
  ],
});
