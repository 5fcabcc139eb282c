/**
 * Images carried as base64 text: JSON string values (at any depth) and urlencoded forms
 * (the port of grasp_sdk/base64_fields.py). Plain base64 and `data:image/...;base64,` URIs
 * are both recognised, in standard or URL-safe alphabets, padded or not, on one line or
 * wrapped. A replacement is written in the same style and put back minimally: in JSON only
 * the string token changes; in a form only the value, percent-encoded as the client did.
 * In JSON, images written as arrays of byte values are found too (./byte_arrays.js). JSON
 * written inside a JSON string or a form value is read too (./encoded_text.js).
 */

import { imageArrayAt } from "./byte_arrays.js";
import { fromBase64, fromLatin1, fromUtf8, latin1, toBase64, utf8 } from "./bytes.js";
import { formValue, jsonString } from "./encoded_text.js";
import { nameMatches } from "./patterns.js";
import { imageType, unquoteToBytes } from "./sniff.js";
import { MalformedBody } from "./splice.js";

const DATA_URI = /^data:[\w.+-]+\/[\w.+-]+(?:;[^;,]*)*?;base64,/i;
const B64_TEXT = /^[A-Za-z0-9+/_=\r\n-]+$/;
const MIN_TEXT = 24; // 18 bytes: enough for every magic number imageType knows
const WS = /[ \t\n\r]*/y;
const SCALAR = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null/y;
const UNRESERVED = /^[A-Za-z0-9._~-]$/;
const JSON_DOCUMENT = /^[ \t\r\n]*[{[]/;  // an object or array
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;  // one half of a pair, which UTF-8 cannot write
const MAX_NESTING = 3;  // JSON within JSON (or a form) read this many levels down

/** How one image was written as text, to write its replacement the same way. */
export class Base64Text {
  /**
   * @param {object} style
   * @param {string} style.prefix the `data:...;base64,` prefix, or "".
   * @param {boolean} style.urlsafe `-_` instead of `+/`.
   * @param {boolean} style.padded `=` padding kept.
   * @param {boolean} [style.paddingShown] whether the text shows if its writer pads (it ends
   *   with `=`, its length is no multiple of 4, or it is in the standard alphabet, whose
   *   writers pad); where not, `padded` is a guess, and only a replacement as long as the
   *   image is written the same either way.
   * @param {number} [style.lineLength] characters per line when wrapped, 0 on one line.
   * @param {string} [style.lineSep] the line separator when wrapped.
   * @param {boolean} [style.trailingSep] whether the text ends with a line separator.
   */
  constructor({ prefix, urlsafe, padded, paddingShown = true, lineLength = 0, lineSep = "\n", trailingSep = false }) {
    Object.assign(this, { prefix, urlsafe, padded, paddingShown, lineLength, lineSep, trailingSep });
    Object.freeze(this);
  }

  /** `data` as base64 text in this style. */
  encode(data) {
    let text = toBase64(data, this.urlsafe);
    if (!this.padded) text = text.replace(/=+$/, "");
    if (this.lineLength) {
      const lines = [];
      for (let i = 0; i < text.length; i += this.lineLength) lines.push(text.slice(i, i + this.lineLength));
      text = lines.join(this.lineSep);
    }
    return this.prefix + text + (this.trailingSep ? this.lineSep : "");
  }
}

/**
 * Decode `text` if it is base64 (or a base64 data URI) of an image.
 * @returns {{style: Base64Text, data: Uint8Array} | null}
 */
export function decodeImageText(text) {
  const match = DATA_URI.exec(text);
  const prefix = match ? match[0] : "";
  let payload = text.slice(prefix.length);
  if (payload.length < MIN_TEXT || !B64_TEXT.test(payload)) return null;
  let lineLength = 0;
  let lineSep = "\n";
  let trailingSep = false;
  if (payload.includes("\n")) {
    lineSep = payload.includes("\r\n") ? "\r\n" : "\n";
    const lines = payload.split(lineSep);
    trailingSep = lines[lines.length - 1] === "";
    // one line and its end (`base64 -w0; echo`) is no wrapping: the new text is one line too
    lineLength = lines.length - Number(trailingSep) > 1 ? lines[0].length : 0;
    payload = lines.join("");
  }
  const urlsafe = payload.includes("-") || payload.includes("_");
  if (urlsafe && (payload.includes("+") || payload.includes("/"))) return null;
  const head = fromBase64(payload.slice(0, MIN_TEXT), urlsafe);
  if (head === null || imageType(head) === null) return null;
  const data = fromBase64(payload + "=".repeat((4 - (payload.length % 4)) % 4), urlsafe);
  if (data === null) return null;
  // Unpadded text of a length a multiple of 4 says nothing of its writer: URL-safe writers
  // mostly leave padding out (JWT, RFC 7515), standard ones put it in.
  const padded = payload.endsWith("=") || (payload.length % 4 === 0 && !urlsafe);
  // standard writers pad (btoa, FileReader, b64encode); URL-safe ones go either way
  const paddingShown = payload.endsWith("=") || payload.length % 4 !== 0 || !urlsafe;
  return { style: new Base64Text({ prefix, urlsafe, padded, paddingShown, lineLength, lineSep, trailingSep }), data };
}

/**
 * Images in the string values of a JSON body, and in its arrays of byte values
 * (./byte_arrays.js), and in JSON written inside its strings; throws MalformedBody.
 * @param {Uint8Array} body the UTF-8 JSON body.
 * @param {readonly string[]} [fields] keys to consider, at any depth (`*` wildcards; array
 *   items count under the nearest key; in JSON inside a string, the string's key considers
 *   all its keys); empty considers every string value.
 * @returns {import("./splice.js").ImageSlot[]}
 */
export function findJsonImages(body, fields = []) {
  let text;
  try {
    text = fromUtf8(body);
  } catch (error) {
    throw new MalformedBody(`not JSON: ${error.message}`);
  }
  return jsonSlots(text, fields, 0, utf8Offsets(text), utf8);
}

/** Whether `text` may be a JSON document that holds an image (an object or array). */
function looksLikeJson(text) {
  return JSON_DOCUMENT.test(text);
}

/**
 * Where offsets of a text lie in the body: the body's byte offset of each of `positions`
 * (offsets of the text, ascending).
 * @typedef {(positions: number[]) => Map<number, number>} Place
 */

/**
 * New JSON text (a token) as the body's bytes, escaped as the text is there.
 * @typedef {(token: string) => Uint8Array} Write
 */

/**
 * Images in JSON written inside a text (`inner`: a string value, a form value, `depth`
 * texts down), put back through that text's escapes; none if the text is no JSON document.
 * @param {import("./encoded_text.js").EncodedText} inner
 * @param {string} location where the text is, for reports.
 * @param {readonly string[]} fields the inner keys to consider (empty: all).
 * @param {number} depth
 * @param {Place} place the container's (see jsonSlots).
 * @param {Write} write the container's.
 * @returns {import("./splice.js").ImageSlot[]}
 */
function jsonWithin(inner, location, fields, depth, place, write) {
  if (LONE_SURROGATE.test(inner.text)) return [];  // no UTF-8 text: not JSON a server reads
  const placeInner = (positions) => {
    const outer = positions.map((p) => inner.outerOffset(p));
    const placed = place(outer);
    return new Map(positions.map((p, k) => [p, placed.get(outer[k])]));
  };
  try {
    return jsonSlots(inner.text, fields, depth + 1, placeInner, (token) => write(inner.encode(token)), `${location} → `);
  } catch (error) {
    if (error instanceof MalformedBody) return [];
    throw error;
  }
}

/**
 * The images of the JSON document `text`; throws MalformedBody.
 * @param {string} text the document, as decoded.
 * @param {readonly string[]} fields as for findJsonImages.
 * @param {number} depth how many texts of the body the document is written inside.
 * @param {Place} place the body's byte offsets of offsets of `text`.
 * @param {Write} write new JSON text as the body's bytes, escaped as `text` is there.
 * @param {string} [prefix] put before each slot's location (where `text` lies in the body).
 * @returns {import("./splice.js").ImageSlot[]}
 */
function jsonSlots(text, fields, depth, place, write, prefix = "") {
  const strings = [];
  try {
    const end = skipWs(text, scan(text, text.startsWith("\ufeff") ? 1 : 0, [], strings));  // after a byte-order mark
    if (end !== text.length) throw new Error(`extra data at character ${end}`);
  } catch (error) {
    throw new MalformedBody(`not JSON: ${error.message}`);
  }
  const offsets = place(strings.flatMap((s) => [s.start, s.end]));
  const slots = [];
  for (const { path, start, end, value, array } of strings) {
    const key = [...path].reverse().find((p) => typeof p === "string") ?? "";
    const wanted = !fields.length || nameMatches(key, fields);
    const location = prefix + "json $" + path.map((p) => (typeof p === "number" ? `[${p}]` : `.${p}`)).join("");
    const [from, to] = [offsets.get(start), offsets.get(end)];
    if (array) {  // an image's array of byte values
      if (wanted) {
        slots.push({ location, data: array.data, mediaType: imageType(array.data), edits: (image) => [{ start: from, end: to, data: write(array.style.encode(image)) }] });
      }
      continue;
    }
    const decoded = wanted ? decodeImageText(value) : null;
    if (decoded === null) {
      const inner = depth < MAX_NESTING && looksLikeJson(value) ? jsonString(text.slice(start + 1, end - 1), start + 1) : null;
      if (inner !== null) slots.push(...jsonWithin(inner, location, wanted ? [] : fields, depth, place, write));
      continue;
    }
    const slashEscaped = text.slice(start, end).includes("\\/");
    slots.push({
      location,
      data: decoded.data,
      mediaType: imageType(decoded.data) ?? "application/octet-stream",
      edits: jsonEdits(from, to, decoded.style, slashEscaped, write),
      exactSize: !decoded.style.paddingShown,
    });
  }
  return slots;
}

function jsonEdits(start, end, style, slashEscaped, write) {
  return (image) => {
    let token = JSON.stringify(style.encode(image));
    if (slashEscaped) token = token.replaceAll("/", "\\/");
    return [{ start, end, data: write(token) }];
  };
}

/**
 * The UTF-8 byte offsets of offsets (UTF-16 code units) of `text`, any number of times at
 * the cost of a search (one encode of the text before each would be quadratic).
 * @param {string} text
 * @returns {Place}
 */
function utf8Offsets(text) {
  const wide = [];  // the code units past ASCII
  const extra = [0];  // the bytes past one a code unit before each of them
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    wide.push(i);
    // two bytes, or three; a surrogate pair's four bytes are one past each of its two units
    extra.push(extra[extra.length - 1] + (code < 0x800 || (code >= 0xd800 && code < 0xe000) ? 1 : 2));
  }
  return (positions) => new Map(positions.map((p) => [p, p + extra[countBelow(wide, p)]]));
}

/** How many of `sorted` (ascending) are below `value`. */
function countBelow(sorted, value) {
  let [low, high] = [0, sorted.length];
  while (low < high) {
    const middle = (low + high) >> 1;
    if (sorted[middle] < value) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** @type {Place} */
function identity(positions) {
  return new Map(positions.map((p) => [p, p]));
}

/**
 * Scan one JSON value at `i`, recording string values and images' arrays of byte values
 * with their spans; its end.
 */
function scan(text, i, path, out) {
  i = skipWs(text, i);
  const c = text[i];
  if (c === '"') {
    const end = stringEnd(text, i);
    out.push({ path, start: i, end, value: JSON.parse(text.slice(i, end)) });
    return end;
  }
  const array = c === "[" ? imageArrayAt(text, i) : null;
  if (array !== null) {
    out.push({ path, start: i, end: array.end, array });
    return array.end;
  }
  if (c === "{" || c === "[") {
    const close = c === "{" ? "}" : "]";
    i = skipWs(text, i + 1);
    if (text[i] === close) return i + 1;
    for (let index = 0; ; ) {
      if (c === "{") {
        i = skipWs(text, i);
        if (text[i] !== '"') throw new Error(`expected a key at character ${i}`);
        const keyEnd = stringEnd(text, i);
        const key = JSON.parse(text.slice(i, keyEnd));
        i = skipWs(text, keyEnd);
        if (text[i] !== ":") throw new Error(`expected ':' at character ${i}`);
        i = scan(text, i + 1, [...path, key], out);
      } else {
        i = scan(text, i, [...path, index], out);
        index += 1;
      }
      i = skipWs(text, i);
      if (text[i] === close) return i + 1;
      if (text[i] !== ",") throw new Error(`expected ',' or '${close}' at character ${i}`);
      i += 1;
    }
  }
  SCALAR.lastIndex = i;
  const match = SCALAR.exec(text);
  if (!match) throw new Error(`unexpected '${c ?? ""}' at character ${i}`);
  return SCALAR.lastIndex;
}

/** One past the closing quote of the string token at `i` (its escapes checked by JSON.parse). */
function stringEnd(text, i) {
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === "\\") j += 1;
    else if (text[j] === '"') return j + 1;
  }
  throw new Error(`unterminated string at character ${i}`);
}

function skipWs(text, i) {
  WS.lastIndex = i;
  WS.exec(text);
  return WS.lastIndex;
}

/**
 * Images in the values of an `application/x-www-form-urlencoded` body (their own bytes
 * percent-encoded, or base64), and in JSON written in one.
 * @param {Uint8Array} body the form body.
 * @param {readonly string[]} [fields] field names to consider (`*` wildcards); empty: all.
 * @returns {import("./splice.js").ImageSlot[]}
 */
export function findFormImages(body, fields = []) {
  const slots = [];
  let pos = 0;
  for (const pair of latin1(body).split("&")) {
    const start = pos;
    pos += pair.length + 1;
    const eq = pair.indexOf("=");
    if (eq < 0 || !/^[\x00-\x7f]*$/.test(pair)) continue;
    const [rawName, rawValue] = [pair.slice(0, eq), pair.slice(eq + 1)];
    const name = unquotePlus(rawName);
    if (name === null) continue;
    const wanted = !fields.length || nameMatches(name, fields);
    const valueStart = start + rawName.length + 1;
    const raw = wanted ? unquotePlusToBytes(rawValue) : new Uint8Array(0);
    const mediaType = imageType(raw);
    if (mediaType !== null) {  // the image's own bytes (requests' data={"photo": bytes})
      const edits = formEdits(valueStart, valueStart + rawValue.length, (image) => requoteBytes(rawValue, image));
      slots.push({ location: `form field '${name}'`, data: raw, mediaType, edits });
      continue;
    }
    const value = unquotePlus(rawValue);
    if (value === null) continue;
    const decoded = wanted ? decodeImageText(value) : null;
    if (decoded === null) {
      const inner = looksLikeJson(value) ? formValue(rawValue, valueStart, (text) => requote(rawValue, text)) : null;
      if (inner !== null) slots.push(...jsonWithin(inner, `form field '${name}'`, wanted ? [] : fields, 0, identity, utf8));  // the body is ASCII: its units are its bytes
      continue;
    }
    slots.push({
      location: `form field '${name}'`,
      data: decoded.data,
      mediaType: imageType(decoded.data) ?? "application/octet-stream",
      edits: formEdits(valueStart, valueStart + rawValue.length, (image) => requote(rawValue, decoded.style.encode(image))),
      exactSize: !decoded.style.paddingShown,
    });
  }
  return slots;
}

/** The edits that write a new image as `write(image)` (percent-encoded) over `start:end`. */
function formEdits(start, end, write) {
  return (image) => [{ start, end, data: fromLatin1(write(image)) }];
}

/**
 * Python's `unquote_plus(text, errors="strict")`: the bytes of unquotePlusToBytes as UTF-8;
 * null when they are not UTF-8.
 */
function unquotePlus(text) {
  try {
    return fromUtf8(unquotePlusToBytes(text));
  } catch {
    return null;
  }
}

/** The bytes of form text (ASCII): `+` is a space, `%XX` a byte (an invalid escape stays as written). */
function unquotePlusToBytes(text) {
  return unquoteToBytes(fromLatin1(text.replaceAll("+", " ")));
}

/**
 * Percent-encode `text` the way `original` (a raw form value) was encoded: see requoteBytes;
 * characters past ASCII are written as their UTF-8 bytes (as forms encode them).
 */
export function requote(original, text) {
  return requoteBytes(original, utf8(text));
}

/**
 * Percent-encode `data` the way `original` (a raw form value) was encoded: a byte the
 * original escaped is escaped the same way (hex case included), one it left literal stays
 * literal; bytes it did not contain are escaped unless unreserved.
 * @param {string} original
 * @param {Uint8Array} data
 */
export function requoteBytes(original, data) {
  const seen = new Map();
  let lowerHex = false;
  for (const match of original.matchAll(/%([0-9A-Fa-f]{2})|([\s\S])/g)) {
    if (match[1]) {
      lowerHex ||= match[1] !== match[1].toUpperCase();
      const byte = parseInt(match[1], 16);
      if (!seen.has(byte)) seen.set(byte, match[0]);
    } else if (match[2] !== "+" && match[2].charCodeAt(0) < 0x80 && !seen.has(match[2].charCodeAt(0))) {
      seen.set(match[2].charCodeAt(0), match[2]);
    }
  }
  let out = "";
  for (const byte of data) {
    if (seen.has(byte)) {
      out += seen.get(byte);
    } else if (byte < 0x80 && UNRESERVED.test(String.fromCharCode(byte))) {
      out += String.fromCharCode(byte);
    } else {
      const code = `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
      out += lowerHex ? code.toLowerCase() : code;
    }
  }
  return out;
}
