/** @module Interface kavro:plugin/cache@0.2.0 **/
/**
 * In prime: look this request up, and store its response, under `key`
 * instead of the default (host + path + query).
 */
export function setKey(key: string): void;
/**
 * In prime: neither look this request up nor store its response.
 */
export function bypass(): void;
/**
 * Drops the entry stored under `key`, every Vary variant included.
 * Returns how many responses went.
 */
export function purge(key: string): bigint;
/**
 * Drops every entry whose key starts with `prefix`.
 */
export function purgePrefix(prefix: string): bigint;
export type HostError = import('./kavro-plugin-types.js').HostError;
