/** @module Interface kavro:plugin/present@0.2.0 **/
/**
 * `args`: when a static file's `!>` directive line named this plugin,
 * the directive's name first, then its arguments; empty when it runs
 * as an ordinary present plugin.
 */
export function onBody(seq: bigint, req: Request, resp: Response, body: Uint8Array, args: Array<string>): Outcome;
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
