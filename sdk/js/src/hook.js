/**
 * The upload hook: protect the images inside one HTTP request body, or leave it untouched
 * (the port of grasp_sdk/hook.py). `rewriteUpload` returns either the rewritten request
 * (every image protected, headers fixed up) or the original one with the reason it was
 * left alone; when an image that should be protected cannot be, it throws RewriteError
 * and the caller applies the site's `on_failure`. On a `block` site, a body that carries an
 * image the hook cannot rewrite (signed, too big, malformed, a piece of a split upload)
 * throws UnprotectableUpload rather than going as it is. A request is never half-rewritten.
 */

import { findFormImages, findJsonImages } from "./base64_fields.js";
import { concat, equal } from "./bytes.js";
import { RewriteError, UnprotectableUpload } from "./errors.js";
import { ProtectOptions } from "./options.js";
import * as hdrs from "./headers.js";
import * as multipart from "./multipart.js";
import { carriesImage, imageType, isComplete } from "./sniff.js";
import { MalformedBody, PinnedBody, applyEdits } from "./splice.js";
import { Digests, digestTokens, joinTokens } from "./stated_digests.js";

/**
 * What happened to one image of an upload.
 * @typedef {object} ImageReport
 * @property {string} location where it was in the body.
 * @property {string} mediaType its sniffed type.
 * @property {number} originalBytes its size before.
 * @property {number} protectedBytes its size after.
 * @property {Record<string, unknown>} report the service's report for it.
 */

/**
 * The outcome of `rewriteUpload`.
 * @typedef {object} UploadRewrite
 * @property {[string, string][]} headers the request headers in their original order; only
 *   the values of length headers change.
 * @property {Uint8Array} body the request body.
 * @property {boolean} changed whether headers/body differ from the original.
 * @property {ImageReport[]} images one report per image protected.
 * @property {string} reason what was done, or why the request was left untouched.
 * @property {string | null} site the name of the matching policy site, if any.
 */

/** Internal to the hooks: the request is left untouched for the reason in `message`. */
export class LeaveAlone extends Error {}

/**
 * Internal to the hooks: the request may carry a photo, and it cannot be rewritten (signed,
 * too big, malformed, a piece of a split upload, a format the site's policy leaves out);
 * `why` says so where the reason to leave it alone (`message`) does not.
 */
export class CannotRewrite extends LeaveAlone {
  constructor(reason, why = reason) {
    super(reason);
    this.why = why;
  }
}

/**
 * Protect the images of one request per `policy`.
 * @param {string} method the HTTP method.
 * @param {string} url the full request URL (its host and path select the policy site).
 * @param {HeadersInit | [string, string][]} headers the request headers.
 * @param {Uint8Array} body the whole request body.
 * @param {import("./policy.js").Policy} policy the site policy.
 * @param {import("./client.js").ProtectFn} protect protects one image.
 * @returns {Promise<UploadRewrite>}
 * @throws {RewriteError} an image that should be protected could not be.
 * @throws {UnprotectableUpload} on a `block` site, the body carries an image it cannot rewrite.
 */
export async function rewriteUpload(method, url, headers, body, policy, protect) {
  const rule = policy.match(method, url);
  if (rule === null) return untouched(hdrs.normalise(headers), body, "no policy site matches", null);
  return rewriteForSite(rule, url, headers, body, protect);
}

/**
 * `rewriteUpload` for a request already matched to `rule`.
 * @param {import("./policy.js").SiteRule} rule
 * @param {string} url
 * @param {HeadersInit | [string, string][]} headers
 * @param {Uint8Array} body
 * @param {import("./client.js").ProtectFn} protect
 * @returns {Promise<UploadRewrite>}
 */
export async function rewriteForSite(rule, url, headers, body, protect) {
  const fields = hdrs.normalise(headers);
  try {
    return await rewrite(rule, url, fields, body, protect);
  } catch (error) {
    if (error instanceof CannotRewrite && rule.onFailure === "block" &&
        await carriesImageAsSent(fields, body, rule.maxBytes)) {
      throw new UnprotectableUpload(`the image this body carries cannot be protected: ${error.why}`,
        { site: rule.name, onFailure: rule.onFailure });
    }
    if (error instanceof LeaveAlone) return untouched(fields, body, error.message, rule.name);
    throw error;
  }
}

const INFLATED = new Set(["gzip", "x-gzip", "deflate"]);

/**
 * Whether the body carries an image, as it is or as sent: a gzip or deflate body is inflated
 * too (up to `limit` bytes; gzip or zlib by its header, whatever the label). One this cannot
 * read (another encoding, a corrupt, cut or larger stream) is taken to carry one: on a
 * `block` site, doubt refuses. Bytes after the stream's end are looked at as they are; where
 * the decoder throws on them (Node does after a gzip stream, unless they are zeros), doubt
 * refuses too. grasp_sdk's `_carries_image`.
 */
async function carriesImageAsSent(fields, body, limit) {
  const encoding = hdrs.contentEncoding(fields);
  if (carriesImage(body)) return true;  // as it is, or a photo put after a compressed stream
  if (encoding === "identity") return false;
  if (!INFLATED.has(encoding)) return true;
  const format = body[0] === 0x1f && body[1] === 0x8b ? "gzip" : "deflate";
  const chunks = [];
  let size = 0;
  try {
    const reader = new Blob([body]).stream().pipeThrough(new DecompressionStream(format)).getReader();
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      chunks.push(read.value);
      size += read.value.length;
      if (size > limit) {
        await reader.cancel();
        return true;
      }
    }
  } catch {
    return true;
  }
  return carriesImage(concat(chunks));
}

function untouched(headers, body, reason, site) {
  return { headers, body, changed: false, images: [], reason, site };
}

async function rewrite(rule, url, fields, body, protect) {
  if (body.length === 0) throw new LeaveAlone("empty body");
  if (rule.signed) throw new CannotRewrite("the policy marks this site's uploads as signed");
  if (body.length > rule.maxBytes) {
    throw new CannotRewrite(`body of ${body.length} bytes exceeds max_bytes ${rule.maxBytes}`);
  }
  const limits = hdrs.constraints(fields, url);
  if (limits.reason) throw new CannotRewrite(limits.reason);
  const stated = await hdrs.statedDigestOfBody(fields, url, body);
  if (stated) throw new CannotRewrite(stated);
  for (const name of rule.lengthHeaders) {
    const declared = hdrs.get(fields, name);
    if (declared !== null && declared.trim() !== String(body.length)) {
      throw new CannotRewrite(`${name} declares ${declared.trim()} bytes and the body holds ${body.length} ` +
        "(a piece of a split upload?)");
    }
  }
  let slots;
  try {
    slots = findSlots(rule, hdrs.get(fields, "content-type") ?? "", body);
  } catch (error) {
    if (error instanceof MalformedBody) throw new CannotRewrite(`malformed body: ${error.message}`);
    if (error instanceof PinnedBody) throw new CannotRewrite(error.message);
    throw error;
  }
  if (slots.length === 0) {  // none where the policy looks; one elsewhere still goes as it is
    throw new CannotRewrite("no image in the body", "not in a field or format the site's policy protects");
  }
  const rest = outside(body, slots);
  const statedBeside = await digestStatedBeside(slots, body, [rest ?? new Uint8Array(0)], hdrs.headerTokens(fields, url));
  if (statedBeside) throw new CannotRewrite(statedBeside);
  if (rule.onFailure === "block" && (rest === null || carriesImage(rest))) {
    throw new CannotRewrite("an image outside the fields and formats the site's policy protects goes with the ones it does");
  }
  const results = await protectSlots(rule, slots, rule.options({ exactSize: limits.lengthLocked }), protect);

  const images = slots.map((slot, i) => imageReport(slot, results[i]));
  const edits = [];
  let newBody;
  try {
    slots.forEach((slot, i) => {
      if (!equal(results[i].data, slot.data)) edits.push(...slot.edits(results[i].data));
    });
    newBody = applyEdits(body, edits);
  } catch (error) {
    throw new RewriteError(`cannot put the protected image back: ${error.message}`,
      { site: rule.name, onFailure: rule.onFailure, cause: error });
  }
  if (edits.length === 0) {
    return { headers: fields, body, changed: false, images, reason: "no image needed protection (no face found)", site: rule.name };
  }
  if (limits.lengthLocked && newBody.length !== body.length) {
    throw new RewriteError("a signature covers Content-Length and the protected body changed " +
      `length (${body.length} → ${newBody.length})`, { site: rule.name, onFailure: rule.onFailure });
  }
  const changed = slots.filter((slot, i) => !equal(results[i].data, slot.data)).length;
  return {
    headers: hdrs.fixUp(fields, newBody, rule.lengthHeaders),
    body: newBody,
    changed: true,
    images,
    reason: `protected ${changed} of ${slots.length} image(s)`,
    site: rule.name,
  };
}

/**
 * Check that every slot holds a whole image, protect them all at once and check each
 * answer; throws CannotRewrite (an incomplete image) or RewriteError (a failure). A slot
 * marked `exactSize` (base64 that hides whether its writer pads) is protected at its length.
 * @returns {Promise<import("./client.js").ProtectResult[]>}
 */
export async function protectSlots(rule, slots, options, protect) {
  for (const slot of slots) {
    if (!isComplete(slot.data, slot.mediaType)) {
      throw new CannotRewrite(`${slot.location} holds an incomplete ${slot.mediaType} ` +
        "(a piece of a chunked upload?)");
    }
  }
  const optionsFor = slots.map((slot) => (slot.exactSize ? new ProtectOptions({ ...options, sizeMode: "exact" }) : options));
  const outcomes = await Promise.allSettled(slots.map((slot, i) => protect(slot.data, optionsFor[i])));
  return outcomes.map((outcome, i) => {
    const slot = slots[i];
    if (outcome.status === "rejected") {
      const error = outcome.reason;
      const why = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      throw new RewriteError(`${slot.location}: ${why}`, { site: rule.name, onFailure: rule.onFailure, cause: error });
    }
    const problem = contractProblem(slot, outcome.value.data, optionsFor[i].sizeMode);
    if (problem) throw new RewriteError(`${slot.location}: ${problem}`, { site: rule.name, onFailure: rule.onFailure });
    return outcome.value;
  });
}

/** What breaks the format or size contract in the service's answer, or null. */
export function contractProblem(slot, data, sizeMode) {
  const returned = imageType(data);
  if (returned !== slot.mediaType) return `the service returned ${returned ?? "a non-image"} for a ${slot.mediaType}`;
  if (sizeMode === "exact" && data.length !== slot.data.length) {
    return `size_mode=exact but ${slot.data.length} → ${data.length} bytes`;
  }
  if (sizeMode === "max" && data.length > slot.data.length) {
    return `size_mode=max but ${slot.data.length} → ${data.length} bytes`;
  }
  return null;
}

function imageReport(slot, result) {
  return {
    location: slot.location,
    mediaType: slot.mediaType,
    originalBytes: slot.data.length,
    protectedBytes: result.data.length,
    report: result.report,
  };
}

/**
 * The images of the body: the whole body if its bytes are an image (whatever its declared
 * type: `curl --data-binary` labels a photo a form), else by the declared format.
 */
function findSlots(rule, contentType, body) {
  const mediaType = imageType(body);
  if (mediaType !== null) {
    requireFormat(rule, "raw");
    return [{ location: "body", data: body, mediaType, edits: (image) => [{ start: 0, end: body.length, data: image }] }];
  }
  const media = contentType.split(";", 1)[0].trim().toLowerCase();
  if (media.startsWith("multipart/")) {
    requireFormat(rule, "multipart");
    return multipart.findImages(body, contentType, rule.fields);
  }
  if (media === "application/x-www-form-urlencoded") {
    requireFormat(rule, "form_base64");
    return findFormImages(body, rule.fields);
  }
  if (media === "application/json" || media.endsWith("+json")) {
    requireFormat(rule, "json_base64");
    return findJsonImages(body, rule.fields);
  }
  // Some clients post JSON as text/plain to avoid a CORS preflight.
  const bom = body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
  const first = body.subarray(bom).find((b) => ![0x20, 0x09, 0x0a, 0x0d, 0x0b, 0x0c].includes(b));
  if ((first === 0x7b || first === 0x5b) && rule.formats.has("json_base64")) return findJsonImages(body, rule.fields);
  throw new CannotRewrite("no image in the body", `the hook reads no ${media || "unlabelled"} body`);
}

/** Throws CannotRewrite unless `format` is enabled for the site. */
export function requireFormat(rule, format) {
  if (!rule.formats.has(format)) throw new CannotRewrite(`format ${format} is not enabled for site '${rule.name}'`);
}


/** `body` with the images of `slots` cut out, or null if they cannot be. */
export function outside(body, slots) {
  try {
    return applyEdits(body, slots.flatMap((slot) => slot.edits(new Uint8Array(0))));
  } catch {  // MalformedBody among them
    return null;
  }
}

/**
 * Why the images may not change if the rest of the body (`rest`: its texts or bytes), a
 * header or the URL (`elsewhere`: their tokens) states the digest of one (a checksum the
 * site would hold the protected image to), else null. A whole-body image's own digest in the
 * headers is `statedDigestOfBody`'s to find (`body`: null where no image is the whole body).
 * @param {import("./splice.js").ImageSlot[]} slots
 * @param {Uint8Array | null} body
 * @param {Iterable<string | Uint8Array>} rest
 * @param {{fromHex: Set<string>, fromBase64: Set<string>}} elsewhere
 * @returns {Promise<string | null>}
 */
export async function digestStatedBeside(slots, body, rest, elsewhere) {
  const beside = digestTokens(rest);
  for (const slot of slots) {
    const tokens = slot.data.length !== body?.length ? joinTokens(beside, elsewhere) : beside;
    const algorithm = await new Digests(slot.data).statedIn(tokens);
    if (algorithm) {
      return `the upload states the ${algorithm} digest of ${slot.location} beside it, which cannot be recomputed`;
    }
  }
  return null;
}
