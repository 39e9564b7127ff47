// Write Kavro plugins in JavaScript or TypeScript.
//
// A plugin module's default export is an object with its name, version,
// capabilities and the phases it implements:
//
//   import { reply } from "kavro";
//   export default {
//     name: "hello", version: "0.1.0", capabilities: [],
//     package(state, req, resp) { resp.setHeader("x-hello", "world"); },
//   };
//
// Phases and what they return:
//   prime(state, req)                 undefined (continue), rewrite("/uri"), or a reply(...)
//   prepare(state, req)               undefined (decline), a reply(...), or forward("upstream", {...})
//   present(state, req, resp, body)   undefined (keep), or the new body (string or Uint8Array)
//   directive(state, req, resp, body, { name, args })
//                                     present, for a static file's `!>` directive named in
//                                     `directives: ["tmpl"]`; returns as present (default: present)
//   package(state, req, resp)         nothing
//   post(state, req, resp, done)      nothing
//
// `state` is a fresh object for every request, the same in all of its
// phases, post included. `req` and `resp` are the host's handles. Build
// with `sdk/js/kavro-js build plugin.ts -o plugin.wasm`.

import { log as hostLog, fail as hostFail } from "kavro:plugin/log@0.2.0";
import * as hostConfig from "kavro:plugin/config@0.2.0";
import * as hostKv from "kavro:plugin/kv@0.2.0";
import * as hostMetrics from "kavro:plugin/metrics@0.2.0";
import * as hostCache from "kavro:plugin/cache@0.2.0";
import * as hostHttp from "kavro:plugin/http@0.2.0";
import * as hostClock from "kavro:plugin/clock@0.2.0";
import * as hostRealtime from "kavro:plugin/realtime@0.2.0";

const encoder = new TextEncoder();
const bytes = (b) => (typeof b === "string" ? encoder.encode(b) : b ?? new Uint8Array());
const big = (n) => (n === undefined ? undefined : BigInt(n));

class Reply {
  constructor(status, body, headers, opts) {
    this.status = status;
    this.body = body;
    this.headers = headers;
    this.opts = opts;
  }
  wit() {
    let cache;
    if (this.opts.noStore) cache = { tag: "no-store" };
    else if (this.opts.cacheMs !== undefined) cache = { tag: "ttl-ms", val: BigInt(this.opts.cacheMs) };
    return { status: this.status, headers: Object.entries(this.headers), body: bytes(this.body), cache };
  }
}

/** A complete response. `opts.cacheMs` / `opts.noStore`: prepare's cache directive. */
export function reply(status, body = "", headers = {}, opts = {}) {
  return new Reply(status, body, headers, opts);
}

class Rewrite {
  constructor(uri) {
    this.uri = uri;
  }
}
/** From prime: route and forward the request as `uri`. */
export const rewrite = (uri) => new Rewrite(uri);

class Forward {
  constructor(upstream, opts) {
    this.upstream = upstream;
    this.opts = opts;
  }
}
/** From prepare: hand the request to a declared upstream. */
export const forward = (upstream, opts = {}) => new Forward(upstream, opts);

export const log = {
  debug: (m) => hostLog("debug", String(m)),
  info: (m) => hostLog("info", String(m)),
  warn: (m) => hostLog("warn", String(m)),
  error: (m) => hostLog("error", String(m)),
};

/** The plugin's own config values. */
export const config = {
  get: (key) => hostConfig.get(key),
  entries: () => hostConfig.entries(),
};

/** The KV store (capability "kv"); numbers instead of BigInt, strings or bytes. */
export const kv = {
  get: (key) => {
    const v = hostKv.get(key);
    return v === undefined ? undefined : new TextDecoder().decode(v);
  },
  set: (key, value, ttlMs) => hostKv.set(key, bytes(value), big(ttlMs)),
  delete: (key) => hostKv.delete(key),
  increment: (key, delta = 1, ttlMs) => Number(hostKv.increment(key, BigInt(delta), big(ttlMs))),
};

/** Counters and histograms (capability "metrics"). */
export const metrics = {
  counterAdd: (name, value = 1) => hostMetrics.counterAdd(name, BigInt(value)),
  histogramObserve: (name, value) => hostMetrics.histogramObserve(name, value),
};

/** Wall time, monotonic time and the call's time left (capability "clock"). */
export const clock = {
  wallMs: () => Number(hostClock.wallMs()),
  monotonicNs: () => hostClock.monotonicNs(),
  remainingMs: () => Number(hostClock.remainingMs()),
};

/** The realtime hub's groups (capability "realtime"). */
export const realtime = {
  publish: (to, message) => hostRealtime.publish(typeof to === "string" ? [to] : to, message),
  groupSize: (name) => hostRealtime.groupSize(name),
};

/** The response cache (capability "cache"). */
export const cache = {
  setKey: (key) => hostCache.setKey(key),
  bypass: () => hostCache.bypass(),
  purge: (key) => Number(hostCache.purge(key)),
  purgePrefix: (prefix) => Number(hostCache.purgePrefix(prefix)),
};

/** Requests to declared upstreams (capability "http"); the body as text. */
export const http = {
  send: (upstream, { method = "GET", uri = "/", headers = {}, body = "" } = {}) => {
    const r = hostHttp.send({ upstream, method, uri, headers: Object.entries(headers), body: bytes(body) });
    return { status: r.status, headers: r.headers, body: new TextDecoder().decode(r.body) };
  },
};

// An exception for the operator: the error, then its stack (SpiderMonkey's
// `stack` lists the frames only).
function describe(e) {
  let s;
  try {
    s = String(e);
  } catch {
    s = Object.prototype.toString.call(e);
  }
  const stack = e instanceof Error && e.stack;
  return stack ? (stack.startsWith(s) ? stack : `${s}\n${stack}`).trimEnd() : s;
}
const dispose = Symbol.dispose || Symbol.for("dispose");

/** The component's exports for a plugin object (used by the build). */
export function exportsFor(p) {
  // One slot: the host keeps an instance for a request from its first
  // phase to its post, and runs post before the instance serves another
  // request. A new seq is a new request, with a fresh state.
  let current;
  let state;
  const stateFor = (seq) => {
    if (seq !== current) {
      current = seq;
      state = {};
    }
    return state;
  };
  // The host shows the failure and its stack and applies the plugin's
  // failure policy whatever the phase returns; returning keeps the
  // instance, which an exception leaves sound.
  const failed = (seq, e) => {
    hostFail(seq, describe(e));
  };
  const wrong = (phase, v) => {
    throw new TypeError(`${phase} returned ${v}, which it cannot return`);
  };
  return {
    plugin: {
      describe: () => ({
        name: p.name,
        version: p.version,
        capabilities: p.capabilities ?? [],
        directives: p.directives ?? [],
      }),
    },
    prime: {
      onRequest(seq, req) {
        try {
          const out = p.prime(stateFor(seq), req);
          if (out === undefined || out === null) return { tag: "continue" };
          if (out instanceof Rewrite) return { tag: "rewrite", val: out.uri };
          if (out instanceof Reply) return { tag: "respond", val: out.wit() };
          wrong("prime", out);
        } catch (e) {
          failed(seq, e);
          return { tag: "continue" };
        }
      },
    },
    prepare: {
      onPrepare(seq, req) {
        try {
          const out = p.prepare(stateFor(seq), req);
          if (out === undefined || out === null) return { tag: "decline" };
          if (out instanceof Reply) return { tag: "respond", val: out.wit() };
          if (out instanceof Forward) {
            const headers = Object.entries(out.opts.headers ?? {});
            return { tag: "forward", val: { upstream: out.upstream, uri: out.opts.uri, headers } };
          }
          wrong("prepare", out);
        } catch (e) {
          failed(seq, e);
          return { tag: "decline" };
        }
      },
    },
    present: {
      // `args`: a `!>` directive's name, then its arguments; empty for an
      // ordinary present call. A directive goes to `directive` if the
      // plugin has it, else to `present`.
      onBody(seq, req, resp, body, args) {
        try {
          let out;
          if (args.length > 0 && typeof p.directive === "function") {
            out = p.directive(stateFor(seq), req, resp, body, { name: args[0], args: args.slice(1) });
          } else if (typeof p.present === "function") {
            out = p.present(stateFor(seq), req, resp, body);
          }
          if (out === undefined || out === null) return { tag: "keep" };
          return { tag: "replace", val: bytes(out) };
        } catch (e) {
          failed(seq, e);
          return { tag: "keep" };
        }
      },
    },
    package: {
      onResponse(seq, req, resp) {
        try {
          p.package(stateFor(seq), req, resp);
        } catch (e) {
          failed(seq, e);
        }
      },
    },
    post: {
      // Each completion on its own, with its request's state if the slot
      // holds it, else a fresh one; the slot is emptied after it. An
      // exception is reported and the rest of the batch still runs; the
      // owned handles are dropped as we go.
      onComplete(batch) {
        for (const { seq, req, resp, done } of batch) {
          try {
            p.post(stateFor(seq), req, resp, done);
          } catch (e) {
            failed(seq, e);
          } finally {
            current = undefined;
            state = undefined;
            req[dispose]();
            resp[dispose]();
          }
        }
      },
    },
  };
}
