/** @module Interface kavro:plugin/plugin@0.2.0 **/
export function describe(): Manifest;
export type Manifest = import('./kavro-plugin-types.js').Manifest;
