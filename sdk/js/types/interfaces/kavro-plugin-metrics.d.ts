/** @module Interface kavro:plugin/metrics@0.2.0 **/
export function counterAdd(name: string, value: bigint): void;
export function histogramObserve(name: string, value: number): void;
export type HostError = import('./kavro-plugin-types.js').HostError;
