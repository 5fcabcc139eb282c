/**
 * Byte-exact splicing of multipart bodies (RFC 2046 / RFC 7578), the port of
 * grasp_sdk/multipart.py. The parser only locates things: delimiter lines, part headers
 * and part bodies as offsets into the original bytes. Replacing an image rewrites nothing
 * but that part's body (and a part-level Content-Length, if a client sent one).
 */

import { decodeImageText, findJsonImages } from "./base64_fields.js";
import { fromLatin1, indexOf, latin1, startsWith, utf8 } from "./bytes.js";
import { nameMatches } from "./patterns.js";
import { imageType } from "./sniff.js";
import { MalformedBody, PinnedBody } from "./splice.js";

const PARAM = /;\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
const PART_LENGTH = /^content-length[ \t]*:[ \t]*(\d+)[ \t]*\r?$/im;
const BOM = utf8("\ufeff");
const MAX_BOUNDARY = 200; // RFC 2046 allows 70; be lenient with clients, not unbounded.
const CRLF = utf8("\r\n");
const DASHES = utf8("--");

/**
 * One part, as offsets into the body.
 * @typedef {object} Part
 * @property {number} headerStart first byte of the part's header block.
 * @property {number} bodyStart first byte of the part's content.
 * @property {number} bodyEnd one past its last byte (the CRLF before the next delimiter).
 * @property {Record<string, string>} headers the part headers, names lower-cased.
 * @property {string | null} name the `name` parameter of Content-Disposition.
 * @property {string | null} filename the `filename` parameter of Content-Disposition.
 */

/** Parameters of a header value (`form-data; name="a"; filename="b.jpg"`), unquoted. */
export function headerParams(value) {
  const params = {};
  for (const [, key, rawValue] of value.matchAll(PARAM)) {
    let raw = rawValue.trim();
    if (raw.startsWith('"')) raw = raw.slice(1, -1).replace(/\\(.)/g, "$1");
    params[key.toLowerCase()] = raw;
  }
  return params;
}

/** The boundary of a `multipart/*` Content-Type, as bytes; throws MalformedBody. */
export function boundaryOf(contentType) {
  const boundary = headerParams(contentType).boundary;
  if (!boundary) throw new MalformedBody(`no boundary in Content-Type '${contentType}'`);
  if (boundary.length > MAX_BOUNDARY) {
    throw new MalformedBody(`boundary longer than ${MAX_BOUNDARY} characters`);
  }
  if (!/^[\x00-\x7f]*$/.test(boundary)) throw new MalformedBody(`non-ASCII boundary '${boundary}'`);
  return fromLatin1(boundary);
}

/**
 * Locate the parts of a multipart `body`; throws MalformedBody. A delimiter is
 * `--boundary` at the start of the body or after CRLF, followed by `--` (the close) or
 * optional whitespace and CRLF; any `CRLF--boundary` counts as one, so an ambiguous body
 * is malformed rather than parsed one way when a server may parse it another.
 * @param {Uint8Array} body
 * @param {Uint8Array} boundary
 * @returns {Part[]}
 */
export function parse(body, boundary) {
  const dash = new Uint8Array([...DASHES, ...boundary]);
  const crlfDash = new Uint8Array([...CRLF, ...dash]);
  let pos;
  if (startsWith(body, dash)) {
    pos = 0;
  } else {
    pos = indexOf(body, crlfDash);
    if (pos < 0) throw new MalformedBody("no opening boundary");
    pos += 2; // past the CRLF that ends the preamble
  }
  const parts = [];
  for (;;) {
    const after = pos + dash.length;
    if (startsWith(body, DASHES, after)) return parts;
    const lineEnd = indexOf(body, CRLF, after);
    if (lineEnd < 0 || latin1(body.subarray(after, lineEnd)).replace(/^[ \t]+|[ \t]+$/g, "")) {
      throw new MalformedBody(`bad delimiter line at byte ${pos}`);
    }
    const start = lineEnd + 2;
    const end = indexOf(body, crlfDash, start);
    if (end < 0) throw new MalformedBody("no closing boundary");
    let separator;
    if (startsWith(body, CRLF, start) || end === start) {
      separator = start;
    } else {
      separator = indexOf(body, utf8("\r\n\r\n"), start, end + 2);
      if (separator < 0) {
        throw new MalformedBody(`part at byte ${start} has no blank line after its headers`);
      }
      separator += 2;
    }
    const bodyStart = Math.min(separator + 2, end);
    parts.push(makePart(start, bodyStart, end, parseHeaders(body.subarray(start, separator))));
    pos = end + 2;
  }
}

function makePart(headerStart, bodyStart, bodyEnd, headers) {
  const params = headerParams(headers["content-disposition"] ?? "");
  return { headerStart, bodyStart, bodyEnd, headers, name: params.name ?? null, filename: params.filename ?? null };
}

function parseHeaders(block) {
  const headers = {};
  let last = null;
  for (const line of new TextDecoder().decode(block).split("\r\n")) {
    if (!line) continue;
    if ((line[0] === " " || line[0] === "\t") && last !== null) {
      headers[last] += " " + line.trim();
      continue;
    }
    const colon = line.indexOf(":");
    if (colon < 0) throw new MalformedBody(`bad part header line '${line.slice(0, 60)}'`);
    last = line.slice(0, colon).trim().toLowerCase();
    headers[last] = line.slice(colon + 1).trim();
  }
  return headers;
}

/**
 * The image parts of a multipart body; throws MalformedBody. A part is an image when its
 * content is one (by magic bytes), or is base64 text of one (X's `media_data` may travel
 * so); the replacement is written the same way. A part that is a JSON document is read for
 * images as a JSON body is.
 * @param {Uint8Array} body the whole request body.
 * @param {string} contentType the request's Content-Type (carries the boundary).
 * @param {readonly string[]} [fields] part names to consider (`*` wildcards); empty: all.
 * @returns {import("./splice.js").ImageSlot[]}
 */
export function findImages(body, contentType, fields = []) {
  const boundary = boundaryOf(contentType);
  const delimiter = new Uint8Array([...CRLF, ...DASHES, ...boundary]);
  const slots = [];
  const parts = parse(body, boundary);
  for (const part of parts) {
    const wanted = !fields.length || nameMatches(part.name ?? "", fields);
    const content = body.subarray(part.bodyStart, part.bodyEnd);
    let data = content;
    let encode = (image) => image;
    let mediaType = wanted ? imageType(content) : null;
    let exactSize = false;
    if (mediaType === null) {
      const decoded = wanted ? decodeImageContent(content) : null;
      if (decoded === null) {
        slots.push(...jsonPart(body, part, wanted ? [] : fields));
        continue;
      }
      data = decoded.data;
      mediaType = imageType(data) ?? "application/octet-stream";
      encode = (image) => fromLatin1(decoded.style.encode(image));
      exactSize = !decoded.style.paddingShown;
    }
    slots.push({
      location: `multipart part ${pyRepr(part.name)}`,
      data,
      mediaType,
      edits: partEdits(body, part, delimiter, encode),
      exactSize,
    });
  }
  const pinned = [
    ...parts.filter((part) => isChecksum(part.name ?? "")).map((part) => pyRepr(part.name)),
    ...parts.filter((part) => "content-md5" in part.headers).map((part) => `Content-MD5 of ${pyRepr(part.name)}`),
  ];
  if (slots.length && pinned.length) {
    throw new PinnedBody(`the form carries a checksum of its file (${pinned.join(", ")})`);
  }
  return slots;
}

/**
 * The images in a part that is a JSON document (`fields`: its keys to consider; empty: all);
 * none in a part that states its own length (one edit per image could not keep it).
 */
function jsonPart(body, part, fields) {
  if (PART_LENGTH.test(latin1(body.subarray(part.headerStart, part.bodyStart)))) return [];
  const slots = jsonContentImages(body.subarray(part.bodyStart, part.bodyEnd), part.name, fields);
  return slots.map((slot) => ({ ...slot, edits: shifted(slot.edits, part.bodyStart) }));
}

/**
 * The images in the content of part `name` when it is a JSON document (an object or array,
 * after a byte-order mark and whitespace), their edits within `content`; `fields`: its keys
 * to consider (empty: all).
 * @param {Uint8Array} content
 * @param {string | null} name
 * @param {readonly string[]} fields
 * @returns {import("./splice.js").ImageSlot[]}
 */
export function jsonContentImages(content, name, fields) {
  if (!startsJson(content)) return [];
  let slots;
  try {
    slots = findJsonImages(content, fields);
  } catch (error) {
    if (error instanceof MalformedBody) return [];
    throw error;
  }
  return slots.map((slot) => ({ ...slot, location: `multipart part ${pyRepr(name)} → ${slot.location}` }));
}

function startsJson(bytes) {
  let i = startsWith(bytes, BOM) ? BOM.length : 0;
  while ([0x20, 0x09, 0x0d, 0x0a].includes(bytes[i])) i += 1;
  return bytes[i] === 0x7b || bytes[i] === 0x5b;
}

function shifted(edits, by) {
  return (image) => edits(image).map((e) => ({ ...e, start: e.start + by, end: e.end + by }));
}

const AMZ_CHECKSUM_NOT_DIGESTS = new Set(["x-amz-checksum-algorithm", "x-amz-checksum-type",
  "x-amz-checksum-mode"]);

/** Whether a form field holds a checksum of the file (S3 and GCS browser uploads). */
export function isChecksum(name) {
  const lname = name.toLowerCase();
  return lname === "content-md5" || lname === "x-goog-hash" ||
    (lname.startsWith("x-amz-checksum-") && !AMZ_CHECKSUM_NOT_DIGESTS.has(lname));
}

/**
 * Decode a part's `content` if it is ASCII text of an image's base64 (or a base64 data URI).
 * @param {Uint8Array} content
 * @returns {{style: import("./base64_fields.js").Base64Text, data: Uint8Array} | null}
 */
export function decodeImageContent(content) {
  return content.every((b) => b < 0x80) ? decodeImageText(latin1(content)) : null;
}

/** Python's repr of a part name (`'media'`, or `None`), so reports read alike. */
function pyRepr(name) {
  return name === null ? "None" : `'${name}'`;
}

function partEdits(body, part, delimiter, encode) {
  return (image) => {
    const content = encode(image);
    if (indexOf(content, delimiter) >= 0) {
      throw new RangeError("the new part content contains the multipart delimiter");
    }
    const edits = [{ start: part.bodyStart, end: part.bodyEnd, data: content }];
    const headerText = latin1(body.subarray(part.headerStart, part.bodyStart));
    const declared = PART_LENGTH.exec(headerText);
    if (declared) {
      const start = part.headerStart + declared.index + declared[0].indexOf(declared[1]);
      edits.push({ start, end: start + declared[1].length, data: utf8(String(content.length)) });
    }
    return edits;
  };
}
