/** @module Interface kavro:plugin/config@0.2.0 **/
export function get(key: string): string | undefined;
export function entries(): Array<[string, string]>;
