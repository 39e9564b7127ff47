/** @module Interface kavro:plugin/prime@0.2.0 **/
export function onRequest(seq: bigint, req: Request): Outcome;
export type Request = import('./kavro-plugin-types.js').Request;
export type Reply = import('./kavro-plugin-types.js').Reply;
export type Outcome = OutcomeContinue | OutcomeRewrite | OutcomeRespond;
export interface OutcomeContinue {
  tag: 'continue',
}
/**
 * Replace the path and query; routing sees the new one.
 */
export interface OutcomeRewrite {
  tag: 'rewrite',
  val: string,
}
export interface OutcomeRespond {
  tag: 'respond',
  val: Reply,
}
