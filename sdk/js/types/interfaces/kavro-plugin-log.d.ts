/** @module Interface kavro:plugin/log@0.1.0 **/
export function log(level: Level, message: string): void;
export type Level = import('./kavro-plugin-types.js').Level;
