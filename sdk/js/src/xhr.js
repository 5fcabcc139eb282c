/** Patch XMLHttpRequest so that matching uploads go out with their photos protected. */

import { UploadBlockedError } from "./errors.js";
import { blockedOutcome, withoutInit } from "./fetch.js";
import { absoluteUrl, protectRequestBody } from "./request.js";

const STATE = Symbol("grasp-guard-xhr");
const PROTECTING = Symbol("grasp-guard-xhr-protecting");
const SENT = Symbol("grasp-guard-xhr-sent");

/**
 * Patch `XHR.prototype` (`open`, `setRequestHeader`, `send`, `abort`) so that a request a
 * policy site matches has its headers held until `send`, its body protected, and then is
 * sent, protected, with its headers fixed up. When protection fails the site's `on_failure`
 * decides: `pass` sends the original; `block` sends nothing and ends the request as a
 * failed one (readyState 4, `readystatechange`, `error`, `loadend`). `abort()` while the
 * photo is being protected ends it as an aborted one, and nothing is sent. A synchronous request cannot wait for the service: it goes
 * under `on_failure` at once (`block` throws UploadBlockedError from `send`).
 * Requests no site matches are untouched.
 *
 * @param {typeof XMLHttpRequest} XHR the class to patch (e.g. `window.XMLHttpRequest`).
 * @param {import("../index.js").GuardOptions} options
 * @returns {() => void} undoes the patch.
 */
export function patchXMLHttpRequest(XHR, options) {
  const proto = XHR.prototype;
  const original = { open: proto.open, setRequestHeader: proto.setRequestHeader, send: proto.send,
    abort: proto.abort };

  proto.open = function open(method, url, ...rest) {
    delete this.readyState;  // the one a refused or aborted request was given (finish)
    this[PROTECTING] = null;
    this[SENT] = false;
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
    this[STATE].headers.push(checkedHeader(name, value));  // refused now, as a browser would
  };

  proto.send = function send(body = null) {
    if (this[SENT]) throw new DOMException("send() was called already; open() first", "InvalidStateError");
    const state = this[STATE];
    if (!state) return original.send.call(this, body);
    this[STATE] = null;
    this[SENT] = true;  // until open(): the real XHR, never sent, would take a second send()
    const go = (headers, payload) => {
      for (const [name, value] of headers) original.setRequestHeader.call(this, name, value);
      return original.send.call(this, payload);
    };
    if (!state.async) return sendSynchronous(this, state, body, go, options);
    this[PROTECTING] = state;
    protectRequestBody(state.url, { method: state.method, headers: state.headers, body }, options).then(
      (outcome) => {
        if (this[PROTECTING] !== state) return;  // aborted meanwhile: nothing goes
        this[PROTECTING] = null;
        options.onOutcome?.(withoutInit(outcome));
        try {
          go(outcome.init.headers ?? state.headers, outcome.init.body ?? null);
        } catch {  // the request cannot go (the browser refused it): it ends as a failed one
          finish(this, "error");
        }
      },
      (error) => {
        if (this[PROTECTING] !== state) return;
        this[PROTECTING] = null;
        const refusal = error instanceof UploadBlockedError ? error : new UploadBlockedError(state.site.name, error);
        options.onOutcome?.(blockedOutcome(state.method, state.url, refusal));
        finish(this, "error");
      },
    );
  };

  // The page called send(): to it the request is under way, so abort() ends it as one
  // (the real send() has not run, and the real abort() alone would neither stop it nor fire).
  proto.abort = function abort() {
    if (!this[PROTECTING]) return original.abort.call(this);
    this[PROTECTING] = null;
    original.abort.call(this);
    finish(this, "abort");
  };

  return () => Object.assign(proto, original);
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A header as `setRequestHeader` takes it (its value trimmed), or the error a browser
 * throws there: TypeError for a character past U+00FF, SyntaxError for a bad name or value. */
function checkedHeader(name, value) {
  const [n, v] = [String(name), String(value)];
  if ([...n, ...v].some((c) => c.codePointAt(0) > 0xff)) throw new TypeError(`header ${n} is not a ByteString`);
  if (!TOKEN.test(n)) throw new DOMException(`'${n}' is not a valid HTTP header field name.`, "SyntaxError");
  const trimmed = v.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
  if (/[\0\r\n]/.test(trimmed)) throw new DOMException(`'${trimmed}' is not a valid HTTP header field value.`, "SyntaxError");
  return [n, trimmed];
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
    reason: `sending the original upload: ${reason}`, error: new Error(reason), blocked: false,
  });
  return go(state.headers, body);
}

/** End a request the page believes sent as a browser ends one that fails (`error`) or is
 * aborted (`abort`): readyState 4 (DONE), `readystatechange`, the event, `loadend`; an
 * aborted one is then UNSENT (0). Until the next open(), which goes back to the real state. */
function finish(xhr, type) {
  const event = (name) => (typeof ProgressEvent === "function" ? new ProgressEvent(name) : new Event(name));
  const state = (value) => Object.defineProperty(xhr, "readyState", { value, configurable: true });
  state(4);
  xhr.dispatchEvent(new Event("readystatechange"));
  xhr.dispatchEvent(event(type));
  xhr.dispatchEvent(event("loadend"));
  if (type === "abort") state(0);
}
