/**
 * Request headers of an upload: read them, decide whether the body may change, fix them up
 * (the port of grasp_sdk/headers.py). Headers travel as an ordered list of `[name, value]`
 * pairs, duplicates and spelling kept.
 *
 * One difference from the Python SDK: checksum headers (Content-MD5, x-amz-checksum-*,
 * x-goog-hash, Content-Digest, Repr-Digest, tus's Upload-Checksum) are not recomputed here,
 * so an upload that carries one is left untouched, with the reason said.
 */

import { Digests, digestTokens } from "./stated_digests.js";

// Headers that say where in the file this body starts (Instagram rupload, Facebook Graph
// resumable upload, tus): a body that does not start at 0 is a piece of a file.
const OFFSET_HEADERS = ["offset", "file_offset", "upload-offset"];
const AMZ_CHECKSUM = "x-amz-checksum-";
const AMZ_CHECKSUM_NOT_DIGESTS = new Set(["x-amz-checksum-algorithm", "x-amz-checksum-type",
  "x-amz-checksum-mode"]);
const DIGEST_FIELDS = ["content-digest", "repr-digest"];
// Checksums of the body; a signature over any of them covers the body's bytes.
const CHECKSUMS = new Set(["content-md5", "x-goog-hash", "digest", "upload-checksum",
  "x-ms-content-crc64", "x-ms-content-md5", "x-ms-blob-content-md5", ...DIGEST_FIELDS]);
const SIGNED_HEADERS = /SignedHeaders=([^,\s]+)/i;
const CONTENT_RANGE = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i;
const HEX_SHA256 = /^[0-9a-fA-F]{64}$/;
const FORM = "application/x-www-form-urlencoded";

/**
 * Headers as ordered `[name, value]` string pairs, from a `Headers`, an array of pairs or a
 * plain object.
 * @param {HeadersInit | Iterable<[string, string]> | undefined | null} headers
 * @returns {[string, string][]}
 */
export function normalise(headers) {
  if (headers === undefined || headers === null) return [];
  if (typeof headers[Symbol.iterator] === "function") return [...headers].map(([k, v]) => [String(k), String(v)]);
  return Object.entries(headers).map(([k, v]) => [k, String(v)]);
}

/** The first value of header `name` (case-insensitive), or null. */
export function get(fields, name) {
  const lname = name.toLowerCase();
  return fields.find(([k]) => k.toLowerCase() === lname)?.[1] ?? null;
}

/**
 * The body's codings: every Content-Encoding field joined (a client may send the header
 * twice), then the transfer codings but `chunked` (`Transfer-Encoding: gzip, chunked`: the
 * body arrives dechunked, still compressed), `identity` left out; "identity" when there are
 * none. grasp_sdk's `content_encoding`.
 * @param {[string, string][]} fields
 * @returns {string}
 */
export function contentEncoding(fields) {
  const codings = ["content-encoding", "transfer-encoding"].flatMap((name) => fields
    .filter(([key]) => key.toLowerCase() === name)
    .flatMap(([, value]) => value.split(",").map((coding) => coding.trim().toLowerCase())));
  return codings.filter((coding) => !["", "identity", "chunked"].includes(coding)).join(", ") || "identity";
}

/**
 * What the headers allow done to the body.
 * @typedef {{reason: string | null, lengthLocked: boolean}} BodyConstraints
 */

/**
 * Decide from the headers (and a presigned URL's query) whether the body may change.
 * @param {[string, string][]} fields the request headers.
 * @param {string} url the request URL (a presigned URL's query may sign headers).
 * @returns {BodyConstraints}
 */
export function constraints(fields, url) {
  const encoding = contentEncoding(fields);
  if (encoding !== "identity") return refuse(`body is content-encoded (${encoding})`);
  for (const name of OFFSET_HEADERS) {
    const offset = get(fields, name);
    if (offset !== null && offset.trim() !== "0") return refuse(`resumed upload (${name}: ${offset.trim()})`);
  }
  const contentRange = get(fields, "content-range");
  if (contentRange !== null && fullRangeLength(contentRange) === null) {
    return refuse(`partial upload (Content-Range: ${contentRange})`);
  }
  for (const [name] of fields) {
    const lname = name.toLowerCase();
    if (CHECKSUMS.has(lname) || (lname.startsWith(AMZ_CHECKSUM) && !AMZ_CHECKSUM_NOT_DIGESTS.has(lname))) {
      return refuse(`${name} header cannot be recomputed by the JavaScript SDK`);
    }
  }
  const limits = signatureConstraints(fields, url);
  // a resumable session's one PUT: the session fixed the total when it was opened
  return limits.reason === null && contentRange !== null ? { reason: null, lengthLocked: true } : limits;
}

function refuse(reason) {
  return { reason, lengthLocked: false };
}

function signatureConstraints(fields, url) {
  const query = queryPairs(url).map(([key, value]) => [key.toLowerCase(), value]);
  // A presigned URL carries in its query what a signed request carries in its headers.
  for (const [name, raw] of [...fields.map(([key, value]) => [key.toLowerCase(), value]), ...query]) {
    const value = raw.trim();
    if ((name === "x-amz-content-sha256" || name === "x-goog-content-sha256") &&
        (HEX_SHA256.test(value) || value.toUpperCase().startsWith("STREAMING-"))) {
      return refuse(`a signature covers the body (${name}: ${value.slice(0, 16)}…)`);
    }
  }
  for (const [name] of query) {
    if (name.startsWith(AMZ_CHECKSUM) && !AMZ_CHECKSUM_NOT_DIGESTS.has(name)) {
      return refuse(`the signed URL pins the body's checksum (${name})`);
    }
  }
  const signed = new Set();
  const authorization = get(fields, "authorization") ?? "";
  const scheme = authorization.toUpperCase();
  // OAuth 1.0a signs with oauth_signature; an OAuth 2 token may come as "OAuth <token>" too
  const oauth1 = scheme.startsWith("OAUTH ") && authorization.toLowerCase().includes("oauth_signature=");
  if (oauth1 && (authorization.toLowerCase().includes("oauth_body_hash") ||
      (get(fields, "content-type") ?? "").toLowerCase().startsWith(FORM))) {
    return refuse("an OAuth 1.0a signature covers the body (its form fields or its hash)");
  }
  // (A V2 signature covers the body only through Content-MD5, refused above.)
  if (scheme.startsWith("AWS4-") || scheme.startsWith("GOOG4-")) {
    const match = SIGNED_HEADERS.exec(authorization);
    if (match) match[1].toLowerCase().split(";").forEach((h) => signed.add(h));
  } else if (scheme.startsWith("SHAREDKEY ")) {
    signed.add("content-length");  // Azure Storage's Shared Key (not Lite) signs the length
  }
  for (const [key, value] of query) {
    if (key === "x-amz-signedheaders" || key === "x-goog-signedheaders") {
      value.toLowerCase().split(";").forEach((h) => signed.add(h));
    }
  }
  const covered = [...signed].filter((h) => CHECKSUMS.has(h) || h.startsWith(AMZ_CHECKSUM)).sort();
  if (covered.length) return refuse(`a signature covers ${covered.join(", ")}`);
  const signatureInput = (get(fields, "signature-input") ?? "").toLowerCase();
  if ([...DIGEST_FIELDS, "content-length"].some((f) => signatureInput.includes(f))) {
    return refuse("an HTTP message signature covers the body's digest or length");
  }
  // SigV4 signs the payload's hash: S3 names it (or UNSIGNED-PAYLOAD) in its header, which
  // the checks above read; every other AWS service hashes the body itself.
  if (scheme.startsWith("AWS4-") && get(fields, "x-amz-content-sha256") === null) {
    return refuse("an AWS SigV4 signature covers the body's hash");
  }
  // tus fixed the upload's length when it was created: a PATCH at offset 0 keeps it.
  return { reason: null, lengthLocked: signed.has("content-length") || get(fields, "tus-resumable") !== null };
}

/**
 * Why the body may not change if a header or the URL states its digest (a checksum the
 * site would hold a new body to: this SDK recomputes none), else null.
 * @returns {Promise<string | null>}
 */
export async function statedDigestOfBody(fields, url, body) {
  const digests = new Digests(body);
  for (const [name, text] of [...fields, ["the URL", url]]) {
    const algorithm = await digests.statedIn(digestTokens([text]));
    if (algorithm) return `${name} states the body's ${algorithm} digest, which cannot be recomputed`;
  }
  return null;
}

/** The digest-length tokens of the URL and every header value. */
export function headerTokens(fields, url) {
  return digestTokens([url, ...fields.map(([, value]) => value)]);
}

function queryPairs(url) {
  try {
    return [...new URL(url).searchParams];
  } catch {
    return [];
  }
}

/** The total length if Content-Range spans the whole file, else null. */
function fullRangeLength(contentRange) {
  const match = CONTENT_RANGE.exec(contentRange.trim());
  if (!match || match[3] === "*") return null;
  const [first, last, total] = [Number(match[1]), Number(match[2]), Number(match[3])];
  return first === 0 && last === total - 1 ? total : null;
}

/**
 * Headers for the rewritten `body`: lengths recomputed, the rest as is. Only the values of
 * headers already present change; none is added or removed. Call `constraints` first.
 * @param {[string, string][]} fields the original headers.
 * @param {Uint8Array} body the new body.
 * @param {readonly string[]} [lengthHeaders] site headers that declare the body length.
 */
export function fixUp(fields, body, lengthHeaders = []) {
  const lengths = new Set(["content-length", ...lengthHeaders.map((h) => h.toLowerCase())]);
  const size = String(body.length);
  return fields.map(([name, value]) => {
    const lname = name.toLowerCase();
    if (lengths.has(lname)) return [name, size];
    if (lname === "content-range") return [name, `bytes 0-${body.length - 1}/${body.length}`];
    return [name, value];
  });
}
