/** A `fetch` that protects the photos of matching uploads before they are sent. */

import { UploadBlockedError } from "./errors.js";
import { absoluteUrl, protectRequestBody } from "./request.js";

/**
 * Wrap `fetchFn` so that every upload a policy site matches goes out with its photos
 * protected (or, when protection fails, as the site's `on_failure` says: the original is
 * sent, or the call rejects with UploadBlockedError before anything is sent). Requests no
 * site matches go straight to `fetchFn`, their bodies unread.
 *
 * The service client must not use the wrapped fetch: pass the original as `options.fetch`
 * (or a `protect` that does not go through it).
 *
 * @param {typeof fetch} fetchFn the fetch to wrap (e.g. `globalThis.fetch`).
 * @param {import("../index.js").GuardOptions} options
 * @returns {typeof fetch}
 */
export function wrapFetch(fetchFn, options) {
  return async function guardedFetch(input, init) {
    const request = typeof Request === "function" && input instanceof Request ? input : null;
    const url = absoluteUrl(request?.url ?? input, options.baseURL);
    const method = (init?.method ?? request?.method ?? "GET").toUpperCase();
    if (options.policy.match(method, url) === null) return fetchFn(input, init);
    const signal = init && init.signal !== undefined ? init.signal : request?.signal;  // null: none
    if (signal?.aborted) return fetchFn(input, init);  // rejects at once; nothing is sent
    let described;
    // A body of null in `init` keeps the Request's own (as fetch reads it).
    if ((init?.body !== undefined && init.body !== null) || request === null || request.body === null) {
      described = { ...init, method, headers: init?.headers ?? request?.headers };
    } else {
      // A Request carries its body: read a copy, send a new Request built from it.
      const body = new Uint8Array(await request.clone().arrayBuffer());
      described = { ...init, method, headers: init?.headers ?? request.headers, body };
    }
    let outcome;
    try {
      outcome = await untilAborted(protectRequestBody(url, described, options), signal);
    } catch (error) {
      if (error instanceof UploadBlockedError) {
        options.onOutcome?.(blockedOutcome(method, url, error));
      }
      throw error;
    }
    options.onOutcome?.(withoutInit(outcome));
    if (!outcome.changed) return fetchFn(input, init);
    const { body, headers } = outcome.init;
    return request === null ? fetchFn(input, { ...init, body, headers })
      : fetchFn(new Request(request, { ...init, body, headers }));
  };
}

/** `promise`, or an AbortError as soon as `signal` aborts (the page's fetch rejects at once,
 * as a browser's does; the protection finishes unheard and nothing is sent). */
function untilAborted(promise, signal) {
  if (!signal) return promise;
  let onAbort;
  const aborted = new Promise((_, reject) => {
    onAbort = () => reject(signal.reason ?? new DOMException("The operation was aborted.", "AbortError"));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  return Promise.race([promise, aborted]).finally(() => signal.removeEventListener("abort", onAbort));
}

/** The outcome reported for a refused upload. */
export function blockedOutcome(method, url, error) {
  return { method, url, site: error.site, changed: false, images: [], reason: error.message, error, blocked: true };
}

/** The outcome without the request it describes, for `onOutcome`. */
export function withoutInit({ init, ...outcome }) {
  return outcome;
}
