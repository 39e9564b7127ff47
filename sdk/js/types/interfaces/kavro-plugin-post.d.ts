/** @module Interface kavro:plugin/post@0.2.0 **/
/**
 * Finished requests, oldest first; several in one call when the host
 * is busy. Each was handled on this instance, so its per-request state
 * is still here.
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
