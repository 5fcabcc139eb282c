/**
 * Protect the photos in the body of one outgoing request described as `fetch` takes it
 * (`url`, `init`), applying the site's `on_failure`: the shared step under `wrapFetch` and
 * `patchXMLHttpRequest`. Bodies of every kind a page sends are read: FormData (entries
 * replaced), URLSearchParams, strings, Blobs and buffers (the bytes rewritten by the hook).
 */

import { fromUtf8, utf8 } from "./bytes.js";
import { RewriteError, UnprotectableUpload, UploadBlockedError } from "./errors.js";
import { formCarriesImage, protectFormData } from "./form_data.js";
import * as hdrs from "./headers.js";
import { rewriteForSite } from "./hook.js";
import { protectFnOf } from "./protect_fn.js";

/**
 * What happened to one request a policy site matched (or why it was not touched).
 * @typedef {object} UploadOutcome
 * @property {string} method
 * @property {string} url the absolute URL.
 * @property {string | null} site the matching policy site, if any.
 * @property {boolean} changed whether the body went out protected.
 * @property {string} reason what was done, or why the original went out.
 * @property {import("./hook.js").ImageReport[]} images one report per image protected.
 * @property {Error | null} error the failure behind an original sent under `pass`, or behind
 *   a refusal.
 * @property {boolean} blocked whether the request was refused (`on_failure: block`).
 */

/**
 * Protect the photos of one request per the policy.
 * @param {string | URL} url the request URL (relative ones against `options.baseURL`).
 * @param {RequestInit} init the request as `fetch` takes it; not modified.
 * @param {import("../index.js").GuardOptions} options the policy and how to protect.
 * @returns {Promise<UploadOutcome & {init: RequestInit}>} `init` to send: a new one with the
 *   protected body and fixed-up headers, or the given one.
 * @throws {UploadBlockedError} protection failed and the site's `on_failure` is `block`.
 */
export async function protectRequestBody(url, init, options) {
  const method = (init.method ?? "GET").toUpperCase();
  const absolute = absoluteUrl(url, options.baseURL);
  const rule = options.policy.match(method, absolute);
  const outcome = { method, url: absolute, site: rule?.name ?? null, changed: false, images: [], error: null, blocked: false };
  if (rule === null) return { ...outcome, reason: "no policy site matches", init };
  try {
    const rewritten = await rewriteBody(absolute, init, rule, options);
    return { ...outcome, ...rewritten, init: rewritten.changed ? { ...init, ...rewritten.init } : init };
  } catch (error) {
    const failure = error instanceof RewriteError ? error
      : new RewriteError(`${error.name}: ${error.message}`, { site: rule.name, onFailure: rule.onFailure, cause: error });
    if (failure.onFailure === "block") throw new UploadBlockedError(rule.name, failure);
    return { ...outcome, reason: `sending the original upload: ${failure.message}`, error: failure, init };
  }
}

/**
 * `url` made absolute against `base` (default: the document's base URL, which a `<base href>`
 * sets and fetch and XMLHttpRequest resolve against; else the page's location), as a string.
 */
export function absoluteUrl(url, base = globalThis.document?.baseURI ?? globalThis.location?.href) {
  return new URL(String(url), base).href;
}

async function rewriteBody(url, init, rule, options) {
  const headers = hdrs.normalise(init.headers);
  const body = init.body ?? null;
  const protect = protectFnOf(options);
  if (typeof FormData === "function" && body instanceof FormData) {
    const limits = hdrs.constraints(headers, url);
    if (limits.reason) {
      if (rule.onFailure === "block" && await formCarriesImage(body, rule.maxBytes)) {
        throw new UnprotectableUpload(`the image this form carries cannot be protected: ${limits.reason}`,
          { site: rule.name, onFailure: rule.onFailure });
      }
      return { changed: false, images: [], reason: limits.reason };
    }
    const done = await protectFormData(body, { site: rule, protect, headers, url });
    return { changed: done.changed, images: done.images, reason: done.reason, init: { body: done.formData } };
  }
  const read = await readBody(body);
  if (read === null) {  // it may hold a photo: the site's on_failure decides, with a notice
    throw new RewriteError("a streamed body cannot be read before it is sent",
      { site: rule.name, onFailure: rule.onFailure });
  }
  const implied = hdrs.get(headers, "content-type") === null && read.contentType !== null;
  const fields = implied ? [...headers, ["Content-Type", read.contentType]] : headers;
  const done = await rewriteForSite(rule, url, fields, read.bytes, protect);
  if (!done.changed) return { changed: false, images: done.images, reason: done.reason };
  return {
    changed: true,
    images: done.images,
    reason: done.reason,
    init: { body: read.rebuild(done.body), headers: implied ? done.headers.slice(0, -1) : done.headers },
  };
}

/**
 * The bytes of a body, the Content-Type the browser would give it, and how to make a body
 * of the same kind from new bytes; null for a body that cannot be read first (a stream).
 */
async function readBody(body) {
  if (body === null) return { bytes: new Uint8Array(0), contentType: null, rebuild: (b) => b };
  if (typeof body === "string") {
    return { bytes: utf8(body), contentType: "text/plain;charset=UTF-8", rebuild: fromUtf8 };
  }
  if (body instanceof URLSearchParams) {
    return {
      bytes: utf8(body.toString()),
      contentType: "application/x-www-form-urlencoded;charset=UTF-8",
      rebuild: (bytes) => new URLSearchParams(fromUtf8(bytes)),
    };
  }
  if (body instanceof Blob) {
    const rebuild = typeof File === "function" && body instanceof File
      ? (bytes) => new File([bytes], body.name, { type: body.type, lastModified: body.lastModified })
      : (bytes) => new Blob([bytes], { type: body.type });
    return { bytes: new Uint8Array(await body.arrayBuffer()), contentType: body.type || null, rebuild };
  }
  if (body instanceof ArrayBuffer) return { bytes: new Uint8Array(body), contentType: null, rebuild: (b) => b };
  if (ArrayBuffer.isView(body)) {
    return { bytes: new Uint8Array(body.buffer, body.byteOffset, body.byteLength), contentType: null, rebuild: (b) => b };
  }
  return null;
}
