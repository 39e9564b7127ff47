/** @module Interface kavro:plugin/prepare@0.2.0 **/
export function onPrepare(seq: bigint, req: Request): Outcome;
export type Request = import('./kavro-plugin-types.js').Request;
export type Reply = import('./kavro-plugin-types.js').Reply;
export type Forward = import('./kavro-plugin-types.js').Forward;
export type Outcome = OutcomeRespond | OutcomeForward | OutcomeDecline;
export interface OutcomeRespond {
  tag: 'respond',
  val: Reply,
}
export interface OutcomeForward {
  tag: 'forward',
  val: Forward,
}
export interface OutcomeDecline {
  tag: 'decline',
}
