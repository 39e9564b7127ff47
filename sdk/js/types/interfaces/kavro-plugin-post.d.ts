/** @module Interface kavro:plugin/post@0.1.0 **/
export function onComplete(seq: bigint, req: Request, resp: Response, done: Completion): void;
export type Request = import('./kavro-plugin-types.js').Request;
export type Response = import('./kavro-plugin-types.js').Response;
export type Completion = import('./kavro-plugin-types.js').Completion;
