/** @module Interface kavro:plugin/types@0.2.0 **/
/**
 * A header as (name, value). Names are lower-case on the way in.
 */
export type Header = [string, string];
/**
 * Why a host call was refused.
 */
export type HostError = HostErrorDenied | HostErrorInvalid | HostErrorUnavailable;
/**
 * The operator did not grant this plugin the capability.
 */
export interface HostErrorDenied {
  tag: 'denied',
  val: string,
}
/**
 * The arguments were not acceptable (bad name, too large, ...).
 */
export interface HostErrorInvalid {
  tag: 'invalid',
  val: string,
}
/**
 * The host could not do it right now.
 */
export interface HostErrorUnavailable {
  tag: 'unavailable',
  val: string,
}
/**
 * # Variants
 * 
 * ## `"trace"`
 * 
 * ## `"debug"`
 * 
 * ## `"info"`
 * 
 * ## `"warn"`
 * 
 * ## `"error"`
 */
export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
/**
 * How a reply from prepare may be cached, on a route that caches.
 */
export type CacheDirective = CacheDirectiveNoStore | CacheDirectiveTtlMs;
/**
 * Never store this reply.
 */
export interface CacheDirectiveNoStore {
  tag: 'no-store',
}
/**
 * Store it for this many milliseconds, whatever the route says.
 */
export interface CacheDirectiveTtlMs {
  tag: 'ttl-ms',
  val: bigint,
}
/**
 * A complete response produced by a plugin.
 */
export interface Reply {
  status: number,
  headers: Array<Header>,
  body: Uint8Array,
  /**
   * None: the route's rules and the reply's Cache-Control decide.
   * Ignored for replies from prime, which answer before the cache.
   */
  cache?: CacheDirective,
}
/**
 * Hand the request to an upstream declared in the host's config.
 */
export interface Forward {
  upstream: string,
  /**
   * A new path and query for the upstream request; none keeps it.
   */
  uri?: string,
  /**
   * Headers set on the upstream request (replacing same-named ones).
   */
  headers: Array<Header>,
}
/**
 * What the host knows once the response has been written.
 */
export interface Completion {
  status: number,
  durationUs: bigint,
  bytesSent: bigint,
  upstream?: string,
  error?: string,
}
/**
 * What a plugin says about itself.
 */
export interface Manifest {
  name: string,
  version: string,
  /**
   * Capabilities it needs: "kv", "metrics", "config", "cache", "http", "clock",
   * "env", "fs".
   */
  capabilities: Array<string>,
  /**
   * The `!>` file directives it answers in present. A plugin that
   * answers any runs in present only where a file's directive line
   * names it (its other phases run as usual).
   */
  directives: Array<string>,
}

export class Request {
  /**
   * This type does not have a public constructor.
   */
  private constructor();
  method(): string;
  /**
  * Path and query, as the request will be routed and forwarded.
  */
  uri(): string;
  path(): string;
  query(): string | undefined;
  /**
  * The Host header (or HTTP/2 :authority), as sent.
  */
  authority(): string | undefined;
  /**
  * "http" or "https", as the client reached Kavro.
  */
  scheme(): string;
  /**
  * The client's IP address as seen by the listener.
  */
  clientIp(): string;
  /**
  * The request id carried in X-Request-Id.
  */
  id(): string;
  header(name: string): string | undefined;
  headerAll(name: string): Array<string>;
  headers(): Array<Header>;
  /**
  * Mutators fail in phases where the request can no longer change.
  */
  setHeader(name: string, value: string): void;
  appendHeader(name: string, value: string): void;
  removeHeader(name: string): void;
}

export class Response {
  /**
   * This type does not have a public constructor.
   */
  private constructor();
  status(): number;
  header(name: string): string | undefined;
  headerAll(name: string): Array<string>;
  headers(): Array<Header>;
  setHeader(name: string, value: string): void;
  appendHeader(name: string, value: string): void;
  removeHeader(name: string): void;
  /**
  * A final status (200-599, not 204 or 304, which carry no body),
  * where the head can still change (present before the head is
  * sent, package).
  */
  setStatus(status: number): void;
}
