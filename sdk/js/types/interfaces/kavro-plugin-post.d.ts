/** @module Interface kavro:plugin/post@0.2.0 **/
/**
 * Finished requests, oldest first. When no plugin of a request's post
 * chain ran in its earlier phases (post-only plugins), its post comes
 * in a batch with the other requests its worker finished meanwhile
 * (up to the host's `post_batch`); otherwise alone, on the instance
 * that ran the earlier phases, with their per-request state. Each
 * request of a batch has the plugin's deadline, from when the plugin
 * first reads its handles or drops the previous request's. If the call
 * traps right after a `log.fail` for one of them, the requests after
 * it are handed over again on a fresh instance; if it traps or runs
 * out of time without one, each request not reported on is handed
 * over again alone (so one handled before the failure may be seen
 * twice).
 */
export function onComplete(batch: Array<Completed>): void;
export type Request = import('./kavro-plugin-types.js').Request;
export type Response = import('./kavro-plugin-types.js').Response;
export type Completion = import('./kavro-plugin-types.js').Completion;
/**
 * One finished request.
 */
export interface Completed {
  seq: bigint,
  req: Request,
  resp: Response,
  done: Completion,
}
