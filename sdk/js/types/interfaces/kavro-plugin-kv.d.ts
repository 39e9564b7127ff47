/** @module Interface kavro:plugin/kv@0.2.0 **/
export function get(key: string): Uint8Array | undefined;
/**
 * `ttl-ms`: none keeps the entry until deleted.
 */
export function set(key: string, value: Uint8Array, ttlMs: bigint | undefined): void;
export { _delete as delete };
function _delete(key: string): boolean;
/**
 * Adds `delta` atomically (a missing key counts as 0) and returns the
 * new value. `ttl-ms` applies when the key is created.
 */
export function increment(key: string, delta: bigint, ttlMs: bigint | undefined): bigint;
export type HostError = import('./kavro-plugin-types.js').HostError;
