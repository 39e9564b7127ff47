// Kavro's config in TypeScript: builders that make the config graph, the
// same graph a kavro.toml or kavro.json describes (docs/config.md). The
// `kavro` CLI beside this file compiles a `kavro.config.ts` to the graph's
// canonical JSON with kavro-host; the host serves the graph and never runs
// this code.

/** A duration: milliseconds as a number, or "500ms", "10s", "5m". */
export type Duration = number | string;

export interface CacheOptions {
  /** Lifetime when nothing more specific says, in milliseconds. */
  ttlMs?: number;
  /** Statuses that may be stored (default [200]). */
  statuses?: number[];
  /** Whether the query string is part of the key (default true). */
  query?: boolean;
  /** Take the lifetime from the origin's headers (default true). */
  originHeaders?: boolean;
  /** Store responses that set cookies (default false). */
  setCookie?: boolean;
  staleWhileRevalidateMs?: number;
  staleIfErrorMs?: number;
}

export interface RouteOptions {
  name?: string;
  methods?: string[];
  priority?: number;
  cache?: CacheOptions;
  /** false: Kavro never compresses this route's responses. */
  compress?: boolean;
  /** Cache-Control towards clients: "none", "changing", "full" or seconds. */
  clientCache?: "none" | "changing" | "full" | number;
  maxRequestBytes?: number;
}

/** What a route does; made by staticFiles, proxy, respond, redirect, fastCgi. */
export interface Action {
  readonly kind: "static" | "proxy" | "respond" | "redirect" | "fastcgi";
  /** The route keys the action sets (graph form). */
  readonly keys: Record<string, unknown>;
  /** A FastCGI upstream named by the action, resolved by defineConfig. */
  readonly fastCgiUpstream?: string;
  /** A cache the action brings with it (fastCgi's `cache`). */
  readonly cache?: CacheOptions;
}

export interface Route {
  readonly path: string;
  readonly action: Action;
  readonly options: RouteOptions;
}

export interface Upstream {
  readonly name: string;
  /** "http://host:port", several for round robin; or "fastcgi://..." */
  readonly targets: string[];
  readonly options: Record<string, unknown>;
}

export interface ServerOptions {
  /** A port (every interface) or "host:port" addresses. */
  listen: number | string | (number | string)[];
  /** Host names this server answers for; none: any. */
  hostnames?: string[];
  routes: Route[];
}

export interface Server extends ServerOptions {
  readonly server: true;
}

export interface PluginOptions {
  /** The component, relative to the plugins folder (default NAME.wasm). */
  file?: string;
  /** Route names the plugin applies to; none: every route. */
  routes?: string[];
  /** Request paths it applies to ("/*.html"); none: every path. */
  paths?: string[];
  capabilities?: string[];
  priority?: number;
  failure?: "fail-open" | "fail-closed";
  isolation?: "pooled" | "request";
  limits?: {
    deadlineMs?: number;
    memoryMb?: number;
    poolSize?: number;
    maxUses?: number;
    maxBodyKb?: number;
  };
  config?: Record<string, string>;
  env?: string[];
  /** Read-only directories: guest path -> host path. */
  dirs?: Record<string, string>;
}

export interface Plugin {
  readonly name: string;
  readonly options: PluginOptions;
}

export interface ConfigInput {
  upstreams?: Upstream[];
  servers: Server[];
  plugins?: Plugin[];
  /** The admin API's address ("127.0.0.1:9900"). */
  admin?: string;
}

/** The graph, as kavro-host reads it from JSON (docs/config.md). */
export type Graph = Record<string, unknown>;

/** An upstream: its name and its targets ("http://127.0.0.1:3000"). */
export function upstream(
  name: string,
  targets: string | string[],
  options: { connectTimeoutMs?: number; readTimeoutMs?: number } = {},
): Upstream {
  return {
    name,
    targets: Array.isArray(targets) ? targets : [targets],
    options: compact({
      connect_timeout_ms: options.connectTimeoutMs,
      read_timeout_ms: options.readTimeoutMs,
    }),
  };
}

/** A FastCGI server (php-fpm): "unix:/run/php/php-fpm.sock" or "host:port". */
export function fastCgiUpstream(
  name: string,
  address: string,
  options: { maxConnections?: number; timeoutMs?: number } = {},
): Upstream {
  return {
    name,
    targets: [`fastcgi://${address}`],
    options: compact({
      max_connections: options.maxConnections,
      timeout_ms: options.timeoutMs,
    }),
  };
}

export function server(options: ServerOptions): Server {
  return { ...options, server: true };
}

export function route(path: string, action: Action, options: RouteOptions = {}): Route {
  return { path, action, options };
}

/** Files under `root`, relative to the config file's folder. */
export function staticFiles(
  root: string,
  options: { index?: string[]; stripPrefix?: string; precompressed?: boolean; directives?: boolean } = {},
): Action {
  return {
    kind: "static",
    keys: {
      static: compact({
        root,
        index: options.index,
        strip_prefix: options.stripPrefix,
        precompressed: options.precompressed,
        directives: options.directives,
      }),
    },
  };
}

export function proxy(upstreamName: string): Action {
  return { kind: "proxy", keys: { proxy: upstreamName } };
}

export function respond(
  body: string,
  options: { status?: number; headers?: Record<string, string> } = {},
): Action {
  return {
    kind: "respond",
    keys: { respond: compact({ body, status: options.status, headers: options.headers }) },
  };
}

export function redirect(to: string, status?: number): Action {
  return { kind: "redirect", keys: { redirect: compact({ to, status }) } };
}

/**
 * PHP (or any FastCGI application) through the FastCGI upstream named
 * `upstreamName`: `root` is the local copy scripts are checked in,
 * `scriptRoot` the same folder as the FastCGI server sees it.
 */
export function fastCgi(
  upstreamName: string,
  root: string,
  options: {
    scriptRoot?: string;
    index?: string[];
    frontController?: string;
    checkExists?: boolean;
    cache?: CacheOptions;
  } = {},
): Action {
  return {
    kind: "fastcgi",
    keys: {
      fastcgi: compact({
        root,
        script_root: options.scriptRoot,
        index: options.index,
        front_controller: options.frontController,
        check_exists: options.checkExists,
      }),
    },
    fastCgiUpstream: upstreamName,
    cache: options.cache,
  };
}

/** A route's cache, for `route(path, action, { cache: cache({...}) })`. */
export function cache(options: CacheOptions): CacheOptions {
  return options;
}

export function plugin(name: string, options: PluginOptions = {}): Plugin {
  return { name, options };
}

class ConfigError extends Error {}

/** The graph of a config; what `kavro compile` writes. */
export function defineConfig(input: ConfigInput): Graph {
  if (!input || !Array.isArray(input.servers) || input.servers.length === 0) {
    throw new ConfigError("defineConfig needs `servers`: [server({ listen, routes })]");
  }
  const upstreams: Record<string, unknown> = {};
  const fastCgi = new Map<string, Upstream>();
  for (const u of input.upstreams ?? []) {
    if (u.targets.some((t) => t.startsWith("fastcgi://"))) {
      fastCgi.set(u.name, u);
      continue;
    }
    upstreams[u.name] = { ...u.options, targets: u.targets.map(hostPort) };
  }
  // Servers on the first server's listeners are top-level routes (one per
  // host name); a server on other listeners is a `servers` entry of its own.
  const listens = input.servers.map((s) => listenAddresses(s.listen));
  const key = (l: string[]) => JSON.stringify([...l].sort());
  const first = key(listens[0]);
  const main = new Set(listens[0]);
  listens.forEach((l) => {
    const shared = l.filter((a) => main.has(a)).length;
    if (shared > 0 && key(l) !== first) {
      throw new ConfigError(
        `a server listens on some of the first server's addresses but not all (${l.join(", ")}): give it the same listen, or addresses of its own`,
      );
    }
  });
  const routes: Record<string, unknown>[] = [];
  const servers: Record<string, unknown>[] = [];
  input.servers.forEach((s, i) => {
    if (key(listens[i]) === first) {
      const hosts = s.hostnames && s.hostnames.length > 0 ? s.hostnames : [undefined];
      for (const r of s.routes) {
        for (const host of hosts) {
          routes.push(routeGraph(r, host, hosts.length > 1, fastCgi));
        }
      }
    } else {
      servers.push(
        compact({
          listen: listens[i],
          hostnames: s.hostnames,
          routes: s.routes.map((r) => routeGraph(r, undefined, false, fastCgi)),
        }),
      );
    }
  });
  return compact({
    server: { listen: listens[0] },
    admin: input.admin === undefined ? undefined : { listen: input.admin },
    upstreams,
    routes,
    servers: servers.length > 0 ? servers : undefined,
    plugins: (input.plugins ?? []).map(pluginGraph),
  });
}

function routeGraph(
  r: Route,
  host: string | undefined,
  perHost: boolean,
  fastCgi: Map<string, Upstream>,
): Record<string, unknown> {
  const o = r.options;
  const keys: Record<string, unknown> = { ...r.action.keys };
  if (r.action.fastCgiUpstream !== undefined) {
    const u = fastCgi.get(r.action.fastCgiUpstream);
    if (!u) {
      throw new ConfigError(
        `route '${r.path}': no FastCGI upstream named '${r.action.fastCgiUpstream}'; declare it with fastCgiUpstream('${r.action.fastCgiUpstream}', 'unix:/run/php/php-fpm.sock')`,
      );
    }
    keys.fastcgi = {
      address: u.targets[0].slice("fastcgi://".length),
      ...u.options,
      ...(keys.fastcgi as Record<string, unknown>),
    };
  }
  const c = o.cache ?? r.action.cache;
  return compact({
    name: o.name === undefined ? undefined : perHost && host ? `${o.name}@${host}` : o.name,
    host,
    path: r.path,
    methods: o.methods,
    priority: o.priority,
    ...keys,
    cache: c === undefined ? undefined : cacheGraph(c),
    compress: o.compress,
    client_cache: o.clientCache,
    max_request_bytes: o.maxRequestBytes,
  });
}

function cacheGraph(c: CacheOptions): Record<string, unknown> {
  return compact({
    ttl: c.ttlMs === undefined ? undefined : `${c.ttlMs}ms`,
    statuses: c.statuses,
    query: c.query,
    origin_headers: c.originHeaders,
    set_cookie: c.setCookie,
    stale_while_revalidate:
      c.staleWhileRevalidateMs === undefined ? undefined : `${c.staleWhileRevalidateMs}ms`,
    stale_if_error: c.staleIfErrorMs === undefined ? undefined : `${c.staleIfErrorMs}ms`,
  });
}

function pluginGraph(p: Plugin): Record<string, unknown> {
  const o = p.options;
  const l = o.limits;
  return compact({
    name: p.name,
    file: o.file,
    priority: o.priority,
    routes: o.routes,
    paths: o.paths,
    capabilities: o.capabilities,
    failure: o.failure,
    isolation: o.isolation,
    limits:
      l === undefined
        ? undefined
        : compact({
            deadline_ms: l.deadlineMs,
            memory_mb: l.memoryMb,
            pool_size: l.poolSize,
            max_uses: l.maxUses,
            max_body_kb: l.maxBodyKb,
          }),
    config: o.config,
    env: o.env,
    dirs: o.dirs,
  });
}

function listenAddresses(listen: ServerOptions["listen"]): string[] {
  const list = Array.isArray(listen) ? listen : [listen];
  return list.map((l) => (typeof l === "number" ? `0.0.0.0:${l}` : l));
}

function hostPort(target: string): string {
  const m = /^http:\/\/([^/]+)\/?$/.exec(target);
  if (target.includes("://") && !m) {
    throw new ConfigError(
      `upstream target '${target}' is not http://host:port (TLS upstreams are written in kavro.toml)`,
    );
  }
  return m ? m[1] : target;
}

/** The object without its undefined values. */
function compact<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
