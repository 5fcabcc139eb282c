/**
 * Client of the protection service, `POST /v1/protect` (the port of grasp_sdk/client.py).
 *
 * Several endpoints are tried in turn when one is unreachable or answers 429 (queue full),
 * 502 or 503; when every endpoint refused, the client backs off (exponentially, with full
 * jitter, or as Retry-After says, capped) and goes round again, within one total time
 * budget. A 504 (the service ran out of time while optimising) is not retried.
 */

import { ProtectTimeout, ServiceError, ServiceUnavailable } from "./errors.js";
import { ProtectOptions } from "./options.js";
import { imageType } from "./sniff.js";

export const REPORT_HEADER = "X-Grasp-Report";
const BUSY = new Set([429, 502, 503]);

/**
 * One protected image: its bytes (identical to the input when nothing was protected), its
 * media type and the service's report, at least `{faces, protected}`.
 * @typedef {{data: Uint8Array, contentType: string, report: Record<string, unknown>}} ProtectResult
 */

/**
 * What the hooks call to protect one image: `client.protect` or a stand-in (a browser
 * extension's page script passes one that asks its background worker).
 * @typedef {(data: Uint8Array, options: ProtectOptions) => Promise<ProtectResult>} ProtectFn
 */

class Refused extends Error {
  constructor(message, retryAfter = null) {
    super(message);
    this.retryAfter = retryAfter;
  }
}

/** Client of one or more protection service endpoints. */
export class GraspClient {
  #fetch;

  /**
   * @param {string | string[]} endpoints a base URL (`http://127.0.0.1:8765`) or several.
   * @param {object} [options]
   * @param {string} [options.token] sent as `Authorization: Bearer <token>`.
   * @param {typeof fetch} [options.fetch] the fetch to use (default: the global one).
   * @param {number} [options.totalTimeoutMs] one `protect` call, retries and waits included.
   * @param {number} [options.maxRetries] rounds over all endpoints after the first.
   * @param {number} [options.backoffBaseMs] the first backoff; doubles each round, full jitter.
   * @param {number} [options.backoffMaxMs] the longest backoff between rounds.
   * @param {number} [options.maxRetryAfterMs] the longest Retry-After honoured.
   */
  constructor(endpoints, {
    token = null, fetch: fetchFn = globalThis.fetch, totalTimeoutMs = 120_000, maxRetries = 4,
    backoffBaseMs = 250, backoffMaxMs = 10_000, maxRetryAfterMs = 30_000,
  } = {}) {
    this.endpoints = Object.freeze(typeof endpoints === "string" ? [endpoints] : [...endpoints]);
    if (this.endpoints.length === 0) throw new RangeError("at least one endpoint is required");
    if (!(totalTimeoutMs > 0) || !(maxRetries >= 0)) {
      throw new RangeError("totalTimeoutMs must be positive and maxRetries non-negative");
    }
    if (typeof fetchFn !== "function") throw new TypeError("no fetch: pass options.fetch");
    Object.assign(this, { token, totalTimeoutMs, maxRetries, backoffBaseMs, backoffMaxMs, maxRetryAfterMs });
    // Called unbound: a browser's fetch throws "Illegal invocation" with another `this`.
    this.#fetch = (url, init) => fetchFn(url, init);
    // A ProtectFn as is: `{protect: client.protect}` works without a bind.
    this.protect = this.protect.bind(this);
  }

  /**
   * Protect one image.
   * @param {Uint8Array} data the image bytes.
   * @param {ProtectOptions | object} [options] how (a ProtectOptions or its fields).
   * @param {{contentType?: string}} [extra] the image's media type; sniffed when omitted.
   * @returns {Promise<ProtectResult>} an image without a face comes back byte-identical,
   *   `report.protected === false`.
   * @throws {ServiceError} the service rejected the image (the error it named).
   * @throws {ServiceUnavailable} no endpoint took it within the retries.
   * @throws {ProtectTimeout} the total time budget ran out.
   */
  async protect(data, options = new ProtectOptions(), { contentType } = {}) {
    options = options instanceof ProtectOptions ? options : new ProtectOptions(options);
    contentType ??= imageType(data) ?? "application/octet-stream";
    const deadline = Date.now() + this.totalTimeoutMs;
    let refusals = [];
    for (let round = 0; round <= this.maxRetries; round++) {
      refusals = [];
      for (const endpoint of this.endpoints) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) throw new ProtectTimeout(`no result within ${this.totalTimeoutMs} ms`);
        try {
          return await this.#post(endpoint, data, options, contentType, remaining);
        } catch (error) {
          if (!(error instanceof Refused)) throw error;
          refusals.push(error);
        }
      }
      if (round === this.maxRetries) break;
      const delay = this.#delay(round, refusals.map((r) => r.retryAfter));
      if (Date.now() + delay >= deadline) {
        throw new ServiceUnavailable(`all endpoints refused and the next try (${Math.round(delay)} ms) ` +
          `is past the time budget: ${refusals.at(-1).message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
    throw new ServiceUnavailable(`all endpoints refused after ${this.maxRetries + 1} round(s): ` +
      refusals.at(-1).message);
  }

  /** Whether any endpoint answers `GET /readyz` with 200. */
  async ready() {
    for (const endpoint of this.endpoints) {
      try {
        const response = await this.#fetch(`${endpoint.replace(/\/+$/, "")}/readyz`, {
          headers: this.#authHeaders(), signal: AbortSignal.timeout(5000),
        });
        await response.arrayBuffer();
        if (response.status === 200) return true;
      } catch {
        // unreachable: try the next endpoint
      }
    }
    return false;
  }

  #delay(round, retryAfter) {
    const hints = retryAfter.filter((h) => h !== null);
    if (hints.length) return Math.min(Math.min(...hints), this.maxRetryAfterMs) + Math.random() * this.backoffBaseMs;
    return Math.random() * Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** round);
  }

  #authHeaders() {
    return this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }

  async #post(endpoint, data, options, contentType, remaining) {
    const query = new URLSearchParams(options.toParams()).toString();
    const url = `${endpoint.replace(/\/+$/, "")}/v1/protect${query ? `?${query}` : ""}`;
    const timeout = AbortSignal.timeout(remaining);
    let response;
    let body;
    try {
      response = await this.#fetch(url, {
        method: "POST",
        body: data,
        headers: { "Content-Type": contentType, ...this.#authHeaders() },
        signal: timeout,
      });
      body = new Uint8Array(await response.arrayBuffer());
    } catch (error) {
      if (timeout.aborted) throw new ProtectTimeout(`no result within ${this.totalTimeoutMs} ms`, { cause: error });
      throw new Refused(`${url}: ${error.name}: ${error.message}`);
    }
    if (BUSY.has(response.status)) throw new Refused(`HTTP ${response.status}`, retryAfterMs(response.headers));
    if (response.status !== 200) throw serviceError(response.status, body);
    return {
      data: body,
      contentType: response.headers.get("Content-Type") ?? contentType,
      report: parseReport(response.headers.get(REPORT_HEADER)),
    };
  }
}

/** Retry-After in milliseconds (the delta form; an HTTP date counts as absent). */
function retryAfterMs(headers) {
  const value = (headers.get("Retry-After") ?? "").trim();
  return /^\d+(\.\d+)?$/.test(value) ? Number(value) * 1000 : null;
}

function parseReport(header) {
  let report = null;
  try {
    report = JSON.parse(header ?? "");
  } catch {
    // reported below
  }
  if (typeof report !== "object" || report === null || Array.isArray(report)) {
    throw new ServiceError("bad_response", `missing or invalid ${REPORT_HEADER} header`, 200);
  }
  return report;
}

function serviceError(status, body) {
  const text = new TextDecoder().decode(body);
  try {
    const { kind, message } = JSON.parse(text).error;
    if (kind !== undefined && message !== undefined) return new ServiceError(String(kind), String(message), status);
  } catch {
    // not the service's JSON error: the text says what happened
  }
  return new ServiceError(`http_${status}`, text.slice(0, 200).trim() || "no error body", status);
}
