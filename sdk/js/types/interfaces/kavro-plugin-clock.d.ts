/** @module Interface kavro:plugin/clock@0.1.0 **/
export function wallMs(): bigint;
export function monotonicNs(): bigint;
export function remainingMs(): bigint;
export type HostError = import('./kavro-plugin-types.js').HostError;
