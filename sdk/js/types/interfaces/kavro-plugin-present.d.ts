/** @module Interface kavro:plugin/present@0.1.0 **/
export function onBody(seq: bigint, req: Request, resp: Response, body: Uint8Array): Outcome;
export type Request = import('./kavro-plugin-types.js').Request;
export type Response = import('./kavro-plugin-types.js').Response;
export type Outcome = OutcomeKeep | OutcomeReplace;
export interface OutcomeKeep {
  tag: 'keep',
}
export interface OutcomeReplace {
  tag: 'replace',
  val: Uint8Array,
}
