/** @module Interface kavro:plugin/log@0.2.0 **/
export function log(level: Level, message: string): void;
/**
 * Reports a failure of the plugin's code on request `seq` (the phase
 * call's, or in post the completion's): a panic's message and
 * location, an exception and its traceback. The host shows it in its
 * log and on `GET /plugins`. The call then fails under the plugin's
 * failure policy, whatever it returns or if it traps. A call that
 * returns keeps its instance: the Python and JavaScript SDKs report an
 * exception and return (in post, going on with the rest of the batch);
 * the Rust SDK's panic hook and C's `kavro_fail` report, then trap. The
 * SDKs call it; plugins rarely need to.
 */
export function fail(seq: bigint, message: string): void;
export type Level = import('./kavro-plugin-types.js').Level;
