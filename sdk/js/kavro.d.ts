// Types for the `kavro` module that plugins import (kavro.js). The request,
// response and completion types are generated from the WIT into types/
// (`sdk/js/kavro-js types sdk/js/types` regenerates them).
declare module "kavro" {
  // (A relative `import` is not allowed in an ambient module; `import()` types are.)
  /**
   * The request's handle; writable in prime and prepare. A header change the
   * host refuses (this phase, a bad name or value) throws an Error whose
   * `payload` is the WIT host-error and `message` its text; so for the response.
   */
  export type Request = import("./types/interfaces/kavro-plugin-types.js").Request;
  /** The response head's handle; writable in package, and in present until the head has gone. */
  export type Response = import("./types/interfaces/kavro-plugin-types.js").Response;
  export type Completion = import("./types/interfaces/kavro-plugin-types.js").Completion;

  export interface Reply {
    readonly status: number;
  }
  export interface Rewrite {
    readonly uri: string;
  }
  export interface Forward {
    readonly upstream: string;
  }
  export type State = Record<string, unknown>;

  export interface Plugin<S extends State = State> {
    name: string;
    version: string;
    capabilities?: Array<"kv" | "metrics" | "config" | "cache" | "http" | "clock" | "env" | "fs">;
    prime?(state: S, req: Request): Reply | Rewrite | undefined | void;
    prepare?(state: S, req: Request): Reply | Forward | undefined | void;
    present?(state: S, req: Request, resp: Response, body: Uint8Array): string | Uint8Array | undefined | void;
    package?(state: S, req: Request, resp: Response): void;
    post?(state: S, req: Request, resp: Response, done: Completion): void;
  }

  export function reply(
    status: number,
    body?: string | Uint8Array,
    headers?: Record<string, string>,
    opts?: { cacheMs?: number; noStore?: boolean },
  ): Reply;
  export function rewrite(uri: string): Rewrite;
  export function forward(
    upstream: string,
    opts?: { uri?: string; headers?: Record<string, string> },
  ): Forward;

  export const log: {
    debug(message: unknown): void;
    info(message: unknown): void;
    warn(message: unknown): void;
    error(message: unknown): void;
  };
  export const config: {
    get(key: string): string | undefined;
    entries(): Array<[string, string]>;
  };
  /** Capability "kv". Refused calls throw. */
  export const kv: {
    get(key: string): string | undefined;
    set(key: string, value: string | Uint8Array, ttlMs?: number): void;
    delete(key: string): boolean;
    increment(key: string, delta?: number, ttlMs?: number): number;
  };
  /** Capability "metrics". */
  export const metrics: {
    counterAdd(name: string, value?: number): void;
    histogramObserve(name: string, value: number): void;
  };
  /** Capability "clock". Refused calls throw. */
  export const clock: {
    /** Milliseconds since the Unix epoch. */
    wallMs(): number;
    /** Nanoseconds since the host started, for measuring. */
    monotonicNs(): bigint;
    /** Milliseconds left before this call's deadline. */
    remainingMs(): number;
  };
  /** Capability "http": requests to upstreams declared in the host's config. */
  export const http: {
    send(
      upstream: string,
      req?: { method?: string; uri?: string; headers?: Record<string, string>; body?: string | Uint8Array },
    ): { status: number; headers: Array<[string, string]>; body: string };
  };
  /** Capability "cache". */
  export const cache: {
    setKey(key: string): void;
    bypass(): void;
    purge(key: string): number;
    purgePrefix(prefix: string): number;
  };
}
