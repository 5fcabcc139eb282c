/** The one way every helper finds its ProtectFn: given, or a client of the given service. */

import { GraspClient } from "./client.js";

/**
 * `options.protect`, else `protect` of a GraspClient for `options.service`.
 * @param {{protect?: Function, service?: string | string[], token?: string, fetch?: typeof fetch}} options
 * @returns {import("./client.js").ProtectFn}
 */
export function protectFnOf(options) {
  if (typeof options.protect === "function") return options.protect;
  if (options.service === undefined || options.service === null) {
    throw new TypeError("either `protect` (a function) or `service` (the service's URL) is required");
  }
  return new GraspClient(options.service, { token: options.token, fetch: options.fetch }).protect;
}
