// Types for the `kavro` module that plugins import (kavro.js). The request,
// response and completion types are generated from the WIT into types/
// (`sdk/js/kavro-js types sdk/js/types` regenerates them). The reference,
// with what each call returns and throws, is in README.md.
declare module "kavro" {
  // (A relative `import` is not allowed in an ambient module; `import()` types are.)

  /** A header as `[name, value]`; names are lower-case. */
  export type Header = import("./types/interfaces/kavro-plugin-types.js").Header;
  /**
   * Why the host refused a call, as `{ tag, val }` with `val` the host's message:
   * `"denied"`: the plugin was not granted the capability;
   * `"invalid"`: the arguments (a bad name, too large, ...) or the phase do not allow it;
   * `"unavailable"`: the host could not do it right now (a store full, an upstream down or late).
   */
  export type HostError = import("./types/interfaces/kavro-plugin-types.js").HostError;
  /**
   * What a refused host call throws (any host import that can fail, and the
   * handles' header mutators): an `Error` whose `message` is the host's text
   * and `payload` the {@link HostError}. Not a class of the SDK: test
   * `"payload" in e`, then `e.payload.tag`.
   */
  export interface HostCallError extends Error {
    readonly payload: HostError;
  }

  /**
   * The request's handle: `method()`, `uri()` (path and query), `path()`,
   * `query()`, `authority()`, `scheme()`, `clientIp()`, `id()`,
   * `header(name)` (the first value, or undefined), `headerAll(name)`,
   * `headers()`; `setHeader`, `appendHeader`, `removeHeader` change it in
   * prime and prepare only. A header change the host refuses (this phase, a
   * bad name or value, more headers added than `limits.max_headers`) throws
   * a {@link HostCallError}; so for the response. Valid only during the
   * phase call: do not keep it in the state.
   */
  export type Request = import("./types/interfaces/kavro-plugin-types.js").Request;
  /**
   * The response head's handle: `status()`, `header(name)`, `headerAll(name)`,
   * `headers()`; `setHeader`, `appendHeader`, `removeHeader` and
   * `setStatus(status)` change it in package, and in present until the head
   * has gone. `setStatus` takes a final status, 200-599 except 204 and 304
   * (which carry no body), and throws a {@link HostCallError} for another.
   * Valid only during the phase call.
   */
  export type Response = import("./types/interfaces/kavro-plugin-types.js").Response;
  /**
   * What the host knows once the response has been written: `status`,
   * `durationUs` and `bytesSent` (both `bigint`: passed as the host gives
   * them), `upstream` and `error` (undefined when none).
   */
  export type Completion = import("./types/interfaces/kavro-plugin-types.js").Completion;

  /** How prepare's reply may be cached on a caching route (ignored from prime). */
  export interface ReplyOptions {
    /** Store the reply this many milliseconds (an integer), whatever the route says. */
    cacheMs?: number;
    /** Never store the reply; wins over `cacheMs`. */
    noStore?: boolean;
  }
  /** A complete response, made by {@link reply} (a plain object is not one: returning it fails the call). */
  export interface Reply {
    readonly status: number;
    readonly body: string | Uint8Array;
    readonly headers: Record<string, string>;
    readonly opts: ReplyOptions;
  }
  /** A new path and query for the request, made by {@link rewrite}. */
  export interface Rewrite {
    readonly uri: string;
  }
  /** What {@link forward} takes besides the upstream. */
  export interface ForwardOptions {
    /** A new path and query for the upstream request; absent keeps the request's. */
    uri?: string;
    /** Headers set on the upstream request, replacing same-named ones. */
    headers?: Record<string, string>;
  }
  /** The request handed to a declared upstream, made by {@link forward}. */
  export interface Forward {
    readonly upstream: string;
    readonly opts: ForwardOptions;
  }
  /**
   * A `!>` directive that named the plugin, from a static file's first line:
   * `!> tmpl header.html &> nonce` is two directives, `tmpl` with args
   * `["header.html"]` and `nonce` with none.
   */
  export interface Directive {
    readonly name: string;
    readonly args: readonly string[];
  }
  /** The per-request state: a fresh `{}` for every request, living through all of its phases, post included. */
  export type State = Record<string, unknown>;
  /** A capability a plugin may ask for; the operator grants it in the host's config. */
  export type Capability = "kv" | "metrics" | "config" | "cache" | "http" | "clock" | "realtime" | "env" | "fs";

  /**
   * A plugin: the module's default export. Define only the phases it
   * implements; they are synchronous (a Promise is not awaited). An exception
   * in a phase, or a value prime or prepare cannot return, is reported to the
   * host with its stack and fails the call under the plugin's `failure` policy.
   */
  export interface Plugin<S extends State = State> {
    name: string;
    version: string;
    /** The capabilities it needs; a plugin not granted one is refused at load. Default none. */
    capabilities?: readonly Capability[];
    /**
     * The `!>` file directives it answers ("tmpl"). A plugin that answers any
     * runs in present only where a static file's directive line names it,
     * and gets {@link Plugin.directive} (else `present`) there; its other
     * phases run as usual. Default none.
     */
    directives?: readonly string[];
    /** Before the cache and routing: nothing to continue, a {@link rewrite}, or a {@link reply}. */
    prime?(state: S, req: Request): Reply | Rewrite | null | undefined | void;
    /** Produces the route's response: nothing to decline, a {@link reply}, or a {@link forward}. */
    prepare?(state: S, req: Request): Reply | Forward | null | undefined | void;
    /** Transforms a buffered body: nothing to keep it, or the new body (a string is sent as UTF-8). */
    present?(
      state: S,
      req: Request,
      resp: Response,
      body: Uint8Array,
    ): string | Uint8Array | null | undefined | void;
    /**
     * Present, for a static file whose `!>` line names one of `directives`:
     * returns what present does. Without it, such a call goes to `present`;
     * defining it exports present.
     */
    directive?(
      state: S,
      req: Request,
      resp: Response,
      body: Uint8Array,
      directive: Directive,
    ): string | Uint8Array | null | undefined | void;
    /** Adjusts the headers of every response, errors and cache hits included. */
    package?(state: S, req: Request, resp: Response): void;
    /** After the response is written; `req` and `resp` are read-only here. */
    post?(state: S, req: Request, resp: Response, done: Completion): void;
  }

  /**
   * A complete response, from prime or prepare. `body` defaults to "",
   * `headers` to none; `opts` is prepare's cache directive.
   */
  export function reply(
    status: number,
    body?: string | Uint8Array,
    headers?: Record<string, string>,
    opts?: ReplyOptions,
  ): Reply;
  /** From prime: route and forward the request as `uri` (a path and query). */
  export function rewrite(uri: string): Rewrite;
  /** From prepare: hand the request to `upstream`, declared in the host's config. */
  export function forward(upstream: string, opts?: ForwardOptions): Forward;

  /** The host's log, tagged with the plugin and the request id (always available; never throws). */
  export const log: {
    /** `message` is converted with `String()`; the host keeps its first 16 KiB. */
    debug(message: unknown): void;
    info(message: unknown): void;
    warn(message: unknown): void;
    error(message: unknown): void;
  };
  /** The plugin's own values from the host's config (always available; never throws). */
  export const config: {
    /** The value, or undefined when not set. */
    get(key: string): string | undefined;
    /** Every value, as `[key, value]`. */
    entries(): Array<[string, string]>;
  };
  /** The KV store shared by the plugin's instances (capability "kv"). Refused calls throw a {@link HostCallError}. */
  export const kv: {
    /** The value decoded as UTF-8, or undefined when absent or expired. */
    get(key: string): string | undefined;
    /** Stores `value` (a string as UTF-8), for `ttlMs` milliseconds (an integer) or until deleted. */
    set(key: string, value: string | Uint8Array, ttlMs?: number): void;
    /** Whether a live entry was deleted. */
    delete(key: string): boolean;
    /**
     * Adds `delta` (default 1) atomically, a missing key counting as 0, and
     * returns the new value; `ttlMs` applies when the key is created.
     */
    increment(key: string, delta?: number, ttlMs?: number): number;
  };
  /** Counters and histograms the host exports (capability "metrics"). Refused calls throw a {@link HostCallError}. */
  export const metrics: {
    /** Adds `value` (a non-negative integer, default 1) to counter `name` (1-64 of a-z, 0-9, _). */
    counterAdd(name: string, value?: number): void;
    /** Records `value` in histogram `name`. */
    histogramObserve(name: string, value: number): void;
  };
  /** Time as the host keeps it (capability "clock"). Refused calls throw a {@link HostCallError}. */
  export const clock: {
    /** Milliseconds since the Unix epoch. */
    wallMs(): number;
    /** Nanoseconds since the host started; never goes back: for measuring. A `bigint`. */
    monotonicNs(): bigint;
    /** Milliseconds left before this call's deadline. */
    remainingMs(): number;
  };
  /** The realtime hub's groups (capability "realtime"). Refused calls throw a {@link HostCallError}. */
  export const realtime: {
    /** Sends `message` as one text frame to groups (names starting with "/") and client ids, each client once; returns the clients reached. */
    publish(to: string | readonly string[], message: string): number;
    /** The clients in a group, or 1 for a connected client's id. */
    groupSize(name: string): number;
  };
  /** What {@link http.send} takes besides the upstream. */
  export interface HttpRequest {
    /** Default "GET". */
    method?: string;
    /** Path and query, starting with "/"; default "/". */
    uri?: string;
    headers?: Record<string, string>;
    /** A string is sent as UTF-8; default empty. */
    body?: string | Uint8Array;
  }
  /** What {@link http.send} returns: the whole response, its body decoded as UTF-8. */
  export interface HttpResponse {
    status: number;
    headers: Array<[string, string]>;
    body: string;
  }
  /** Requests to upstreams declared in the host's config (capability "http"). Refused calls throw a {@link HostCallError}. */
  export const http: {
    /**
     * Sends a request to `upstream` and returns its response, within the
     * upstream's timeouts and what is left of the call's deadline.
     */
    send(upstream: string, req?: HttpRequest): HttpResponse;
  };
  /** The host's response cache (capability "cache"). Refused calls throw a {@link HostCallError}. */
  export const cache: {
    /** In prime: look this request up, and store its response, under `key` instead of host + path + query. */
    setKey(key: string): void;
    /** In prime: neither look this request up nor store its response. */
    bypass(): void;
    /** Drops the entry stored under `key`, every Vary variant included; returns how many responses went. */
    purge(key: string): number;
    /** Drops every entry whose key starts with `prefix`; returns how many responses went. */
    purgePrefix(prefix: string): number;
  };

  /**
   * @internal The component's exports for a plugin object: what
   * `kavro-js build` wires up. Plugins do not call it.
   */
  export function exportsFor(plugin: Plugin<any>): {
    plugin: object;
    prime: object;
    prepare: object;
    present: object;
    package: object;
    post: object;
  };
}
