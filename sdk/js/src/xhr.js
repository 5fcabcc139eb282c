/** Patch XMLHttpRequest so that matching uploads go out with their photos protected. */

import { UploadBlockedError } from "./errors.js";
import { blockedOutcome, withoutInit } from "./fetch.js";
import { absoluteUrl, protectRequestBody } from "./request.js";

const STATE = Symbol("grasp-guard-xhr");

/**
 * Patch `XHR.prototype` (`open`, `setRequestHeader`, `send`) so that a request a policy
 * site matches has its headers held until `send`, its body protected, and then is sent,
 * protected, with its headers fixed up. When protection fails the site's `on_failure`
 * decides: `pass` sends the original; `block` sends nothing and fires `error` and
 * `loadend` on the request. A synchronous request cannot wait for the service: it goes
 * under `on_failure` at once (`block` throws UploadBlockedError from `send`).
 * Requests no site matches are untouched.
 *
 * @param {typeof XMLHttpRequest} XHR the class to patch (e.g. `window.XMLHttpRequest`).
 * @param {import("../index.js").GuardOptions} options
 * @returns {() => void} undoes the patch.
 */
export function patchXMLHttpRequest(XHR, options) {
  const proto = XHR.prototype;
  const original = { open: proto.open, setRequestHeader: proto.setRequestHeader, send: proto.send };

  proto.open = function open(method, url, ...rest) {
    const absolute = absoluteUrl(url, options.baseURL);
    const rule = options.policy.match(method, absolute);
    // open(m, u) is asynchronous; open(m, u, undefined) is not (WebIDL makes it false)
    const async = rest.length === 0 || Boolean(rest[0]);
    this[STATE] = rule === null ? null
      : { method: method.toUpperCase(), url: absolute, async, headers: [], site: rule };
    return original.open.call(this, method, url, ...rest);
  };

  proto.setRequestHeader = function setRequestHeader(name, value) {
    if (!this[STATE]) return original.setRequestHeader.call(this, name, value);
    this[STATE].headers.push([String(name), String(value)]);
  };

  proto.send = function send(body = null) {
    const state = this[STATE];
    if (!state) return original.send.call(this, body);
    this[STATE] = null;
    const go = (headers, payload) => {
      for (const [name, value] of headers) original.setRequestHeader.call(this, name, value);
      return original.send.call(this, payload);
    };
    if (!state.async) return sendSynchronous(this, state, body, go, options);
    protectRequestBody(state.url, { method: state.method, headers: state.headers, body }, options).then(
      (outcome) => {
        options.onOutcome?.(withoutInit(outcome));
        go(outcome.init.headers ?? state.headers, outcome.init.body ?? null);
      },
      (error) => {
        const refusal = error instanceof UploadBlockedError ? error : new UploadBlockedError(state.site.name, error);
        options.onOutcome?.(blockedOutcome(state.method, state.url, refusal));
        fail(this);
      },
    );
  };

  return () => Object.assign(proto, original);
}

function sendSynchronous(xhr, state, body, go, options) {
  const reason = "a synchronous XMLHttpRequest cannot wait for the protection service";
  if (state.site.onFailure === "block") {
    const refusal = new UploadBlockedError(state.site.name, new Error(reason));
    options.onOutcome?.(blockedOutcome(state.method, state.url, refusal));
    throw refusal;
  }
  options.onOutcome?.({
    method: state.method, url: state.url, site: state.site.name, changed: false, images: [],
    reason: `sending the original upload: ${reason}`, error: null, blocked: false,
  });
  return go(state.headers, body);
}

/** Fire what a failed request fires, for the page's handlers. */
function fail(xhr) {
  const event = (type) => (typeof ProgressEvent === "function" ? new ProgressEvent(type) : new Event(type));
  xhr.dispatchEvent(event("error"));
  xhr.dispatchEvent(event("loadend"));
}
