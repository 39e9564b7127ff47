/** @module Interface kavro:plugin/realtime@0.2.0 **/
/**
 * Sends `message` as one text frame to every client in `to`: groups
 * (names starting with `/`) and client ids, each client once.
 * Returns the clients reached.
 */
export function publish(to: Array<string>, message: string): number;
/**
 * The clients in a group, or 1 for a connected client's id.
 */
export function groupSize(name: string): number;
export type HostError = import('./kavro-plugin-types.js').HostError;
