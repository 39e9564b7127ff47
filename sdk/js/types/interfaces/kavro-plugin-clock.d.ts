/** @module Interface kavro:plugin/clock@0.2.0 **/
/**
 * Milliseconds since the Unix epoch.
 */
export function wallMs(): bigint;
/**
 * Nanoseconds since the host started; never goes back: for measuring.
 */
export function monotonicNs(): bigint;
/**
 * Milliseconds left before the current call's deadline (a call on a
 * saturated host's slow lane may be given more).
 */
export function remainingMs(): bigint;
export type HostError = import('./kavro-plugin-types.js').HostError;
