/** @module Interface kavro:plugin/http@0.2.0 **/
/**
 * Sends the request and returns the whole response. Bounded by the
 * upstream's timeouts and by what is left of the plugin's deadline.
 */
export function send(req: OutgoingRequest): IncomingResponse;
export type Header = import('./kavro-plugin-types.js').Header;
export type HostError = import('./kavro-plugin-types.js').HostError;
export interface OutgoingRequest {
  /**
   * The name of an upstream in the host's config.
   */
  upstream: string,
  method: string,
  /**
   * Path and query.
   */
  uri: string,
  headers: Array<Header>,
  body: Uint8Array,
}
export interface IncomingResponse {
  status: number,
  headers: Array<Header>,
  body: Uint8Array,
}
