/**
 * Recognise image bytes by their magic numbers, and tell a whole image from a piece of one
 * (the port of grasp_sdk/sniff.py). Uploads often label images
 * `application/octet-stream` (or lie), so the bytes decide. A chunked upload can carry
 * the first piece of an image: `isComplete` walks the container structure to tell.
 */

import { fromLatin1, latin1, readUint, startsWith, toBase64 } from "./bytes.js";

const HEIF_BRANDS = new Set(["heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs"]);
const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * The image media type of `data` from its magic bytes, or null if it is not one.
 * Recognises JPEG, PNG, GIF, WebP, HEIC/HEIF and AVIF.
 * @param {Uint8Array} data
 * @returns {string | null}
 */
export function imageType(data) {
  if (startsWith(data, [0xff, 0xd8, 0xff])) return "image/jpeg";
  if (startsWith(data, PNG_MAGIC)) return "image/png";
  const head = latin1(data.subarray(0, 12));
  if (head.startsWith("GIF87a") || head.startsWith("GIF89a")) return "image/gif";
  if (head.startsWith("RIFF") && head.slice(8, 12) === "WEBP") return "image/webp";
  if (head.slice(4, 8) === "ftyp" && data.length >= 12) {
    const size = readUint(data, 0, 4);
    const box = latin1(data.subarray(8, Math.min(Math.max(size, 12), 256)));
    const brands = new Set();
    for (let i = 0; i < box.length - 3; i += 4) brands.add(box.slice(i, i + 4));
    if (brands.has("avif") || brands.has("avis")) return "image/avif";
    if ([...brands].some((b) => HEIF_BRANDS.has(b))) return "image/heic";
    if (brands.has("mif1") || brands.has("msf1")) return "image/heif";
  }
  return null;
}

const IMAGE_BRANDS = [...HEIF_BRANDS, "avif", "avis", "mif1", "msf1", "miaf"].sort();
// Signatures long enough (six bytes and more) that chance does not make them.
const SIGNATURES = [
  ["\x89PNG\r\n\x1a\n", 0],
  ["GIF87a", 0],
  ["GIF89a", 0],
  ...IMAGE_BRANDS.map((brand) => [`ftyp${brand}`, 4]),
];
// How each encoder writes base64's two symbols: as is, URL-safe, percent-encoded, JSON-escaped.
const SLASH = "(?:/|\\\\/|%2[Ff]|_)";
const PLUS = "(?:\\+|%2[Bb]|-)";
const JPEG_WINDOW = 1536; // bytes of a candidate JPEG's start that decide whether it is one
// Characters of a base64 run read after a JPEG's start: enough for the window's 2048 symbols
// with escapes and line breaks among them (a stream must hold back as many).
const BASE64_BUDGET = 4096;
const MAX_JPEG_STARTS = 4096; // SOIs (raw, or base64) looked at; chance makes one in 16 MB

/**
 * A regex source of `signature`'s base64 (at `offset` in its file) as any encoder writes it;
 * only the whole 3-byte groups it fills.
 */
function base64Pattern(signature, offset) {
  const skip = (3 - (offset % 3)) % 3;
  const whole = signature.slice(skip, skip + Math.floor((signature.length - skip) / 3) * 3);
  return [...toBase64(fromLatin1(whole))].map((c) => (c === "/" ? SLASH : c === "+" ? PLUS : c)).join("");
}

// An image inside a body the hook could not take apart, raw or base64 as a JSON or form field
// carries it, matched over the body read as latin-1, one character a byte (the regexes of
// grasp_sdk/sniff.py).
const SURE_IMAGE = new RegExp([
  `\\x89PNG\\r\\n\\x1a\\n|GIF8[79]a|RIFF....WEBP|ftyp(?:${IMAGE_BRANDS.join("|")})`,
  "UklG(?:[A-Za-z0-9+/_-]|\\\\/|%2[BbFf]){8}RUJQ", // base64 of RIFF....WEBP
  ...SIGNATURES.map(([signature, at]) => base64Pattern(signature, at)),
].join("|"), "s");
// A JPEG's SOI is three bytes: a candidate must show a JPEG header after it (jpegHeader).
const JPEG_START_BASE64 = new RegExp(base64Pattern("\xff\xd8\xff", 0), "g");
// The body is searched a window at a time (no string of a whole large body); windows overlap
// by more than the longest match (32 characters: UklG, 8 x %2F, RUJQ), so none is missed. A
// candidate JPEG near a window's end is read on from the body, not the window.
const WINDOW = 1 << 20;
const OVERLAP = 64;

const HEADER_MARKER = new Uint8Array(256);
for (let m = 0xc0; m <= 0xcf; m++) HEADER_MARKER[m] = m === 0xc8 || m === 0xcc ? 0 : 1;
for (let m = 0xe0; m <= 0xef; m++) HEADER_MARKER[m] = 1;
for (const m of [0xdb, 0xdd, 0xfe]) HEADER_MARKER[m] = 1;
// The bytes of a comment (COM) too long to see the end of that make it text: printable ASCII.
const COMMENT_TEXT = new Uint8Array(256);
for (let b = 0x20; b <= 0x7e; b++) COMMENT_TEXT[b] = 1;
for (const b of [0x09, 0x0a, 0x0d]) COMMENT_TEXT[b] = 1;
const COMMENT_SEEN = 16; // bytes of such a comment that must be seen

/**
 * Whether `data[start:end]` starts as a JPEG: SOI, fill bytes, then a header segment whose
 * length lands on the next marker (or, an APPn too long to see the end of, names itself in
 * ASCII: JFIF, Exif, an XMP namespace; a COM too long to see the end of shows 16 or more
 * bytes, all printable ASCII).
 */
function jpegHeader(data, start, end) {
  const n = end - start;
  let i = 2;
  while (i < n && data[start + i] === 0xff) i++;
  if (i + 3 > n || !HEADER_MARKER[data[start + i]] || i === 2) return false;
  const marker = data[start + i];
  const length = (data[start + i + 1] << 8) | data[start + i + 2];
  const after = i + 1 + length;
  if (length < 2) return false;
  if (after < n) return data[start + after] === 0xff;
  if (marker === 0xfe) {
    if (n - (i + 3) < COMMENT_SEEN) return false;
    for (let k = start + i + 3; k < end; k++) {
      if (!COMMENT_TEXT[data[k]]) return false;
    }
    return true;
  }
  if (marker < 0xe0 || marker > 0xef || i + 7 > n) return false;
  for (let k = start + i + 3; k < start + i + 7; k++) {
    if (data[k] <= 0x20 || data[k] >= 0x7f) return false;
  }
  return true;
}

// The value of each base64 symbol as any encoder writes it ('-' for '+', '_' for '/').
const SEXTET = new Int8Array(256).fill(-1);
[..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"].forEach((c, i) => { SEXTET[c.charCodeAt(0)] = i; });
SEXTET[0x2d] = 62; // -
SEXTET[0x5f] = 63; // _
const RUN_SYMBOLS = (JPEG_WINDOW / 3) * 4;
const RUN_SEXTETS = new Uint8Array(RUN_SYMBOLS);
const RUN_BYTES = new Uint8Array(JPEG_WINDOW);

/**
 * The first JPEG_WINDOW bytes of the base64 run at `at` in `body` (within BASE64_BUDGET
 * characters of it: symbols, `\/`, `%2F`, `%2B` in either case, and the line breaks of MIME,
 * PEM or `base64`, raw, JSON-escaped or percent-encoded: CR, LF, `\r`, `\n`, `%0D`, `%0A`),
 * as any encoder wrote it, cut to whole 4-symbol groups. A view of a buffer the next call
 * reuses.
 */
function decodedRun(body, at) {
  const end = Math.min(at + BASE64_BUDGET, body.length);
  let count = 0;
  for (let p = at; p < end && count < RUN_SYMBOLS;) {
    const c = body[p];
    let value = SEXTET[c];
    if (value >= 0) {
      p += 1;
    } else if (c === 0x0a || c === 0x0d) { // a line break
      p += 1;
      continue;
    } else if (c === 0x5c && p + 1 < end && (body[p + 1] === 0x6e || body[p + 1] === 0x72)) { // \n, \r
      p += 2;
      continue;
    } else if (c === 0x5c && p + 1 < end && body[p + 1] === 0x2f) { // \/
      value = 63;
      p += 2;
    } else if (c === 0x25 && p + 2 < end && body[p + 1] === 0x30) { // %0A, %0D
      const which = body[p + 2] | 0x20;
      if (which !== 0x61 && which !== 0x64) break;
      p += 3;
      continue;
    } else if (c === 0x25 && p + 2 < end && body[p + 1] === 0x32) { // %2B, %2F
      const which = body[p + 2] | 0x20;
      if (which === 0x62) value = 62;
      else if (which === 0x66) value = 63;
      else break;
      p += 3;
    } else {
      break;
    }
    RUN_SEXTETS[count++] = value;
  }
  count -= count % 4;
  for (let i = 0, j = 0; i < count; i += 4, j += 3) {
    const n = (RUN_SEXTETS[i] << 18) | (RUN_SEXTETS[i + 1] << 12) | (RUN_SEXTETS[i + 2] << 6) | RUN_SEXTETS[i + 3];
    RUN_BYTES[j] = n >> 16;
    RUN_BYTES[j + 1] = (n >> 8) & 0xff;
    RUN_BYTES[j + 2] = n & 0xff;
  }
  return RUN_BYTES.subarray(0, (count / 4) * 3);
}

/**
 * Whether `body` holds an image anywhere: raw, or base64 (standard, URL-safe,
 * percent-encoded or JSON-escaped). For a body the hook leaves alone: on a `block` site it
 * must not go. A JPEG counts only with a header after its SOI, so that chance (one
 * three-byte SOI in every 16 MB of random bytes) does not refuse a video. The same answer as
 * grasp_sdk's `carries_image`: every start is looked at, one overlapping another too (`/9j`
 * just before `/9j/4AAQ`), and a body of more than MAX_JPEG_STARTS SOIs of either kind is
 * taken to carry one (doubt refuses). A base64 run may be broken into lines (MIME, PEM, a
 * JSON string's `\n`).
 * @param {Uint8Array} body
 */
export function carriesImage(body) {
  let [rawStarts, base64Starts] = [0, 0];
  for (let start = 0; start < body.length; start += WINDOW) {
    const text = latin1(body.subarray(start, start + WINDOW + OVERLAP));
    if (SURE_IMAGE.test(text)) return true;
    // raw SOIs starting in this window, each checked on up to JPEG_WINDOW bytes of the body
    const here = body.subarray(0, Math.min(start + WINDOW, body.length));
    for (let p = here.indexOf(0xff, start); p >= 0; p = here.indexOf(0xff, p + 1)) {
      if (body[p + 1] !== 0xd8 || body[p + 2] !== 0xff) continue;
      if (rawStarts++ === MAX_JPEG_STARTS) return true;
      if (jpegHeader(body, p, Math.min(p + JPEG_WINDOW, body.length))) return true;
    }
    // base64 SOIs starting in this window, each checked on its decoded run
    JPEG_START_BASE64.lastIndex = 0;
    for (let m = JPEG_START_BASE64.exec(text); m !== null && m.index < WINDOW; m = JPEG_START_BASE64.exec(text)) {
      if (base64Starts++ === MAX_JPEG_STARTS) return true;
      const decoded = decodedRun(body, start + m.index);
      if (jpegHeader(decoded, 0, decoded.length)) return true;
      JPEG_START_BASE64.lastIndex = m.index + 1; // every start: one may overlap the one before
    }
  }
  return false;
}

/**
 * Whether `data` holds a whole image of `mediaType` rather than a truncated piece.
 * Formats without a structural check are assumed complete.
 * @param {Uint8Array} data
 * @param {string} mediaType
 */
export function isComplete(data, mediaType) {
  switch (mediaType) {
    case "image/jpeg":
      return jpegComplete(data);
    case "image/png":
      return pngComplete(data);
    case "image/gif": {
      let end = data.length;
      while (end > 0 && data[end - 1] === 0) end--;
      return end > 0 && data[end - 1] === 0x3b; // ';', the GIF trailer
    }
    case "image/webp":
      return readLittle32(data, 4) + 8 <= data.length;
    case "image/heic":
    case "image/heif":
    case "image/avif":
      return bmffComplete(data);
    default:
      return true;
  }
}

function readLittle32(data, at) {
  return ((data[at] ?? 0) | ((data[at + 1] ?? 0) << 8) | ((data[at + 2] ?? 0) << 16)) +
    (data[at + 3] ?? 0) * 2 ** 24;
}

const JPEG_STANDALONE = new Set([0x01, 0xd8, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7]);
const SOI = Uint8Array.of(0xff, 0xd8, 0xff);
const FTYP = Uint8Array.of(0x66, 0x74, 0x79, 0x70);

/**
 * The image ends at its EOI, and what follows it, where it is a structure we know, is whole
 * too: the frames an MPO or an Ultra HDR gain map appends, one JPEG after another, and a
 * motion photo's video (ISO BMFF). A piece of such a file cut past the first EOI would
 * otherwise pass for a whole photo.
 */
function jpegComplete(data) {
  let start = 0;
  for (;;) {
    const end = jpegEnd(data, start);
    if (end < 0) return false;
    const left = data.length - end;
    if (startsWith(data, SOI, end)) {
      start = end;
    } else if (left > 0 && left < 3 && startsWith(SOI, data.subarray(end))) {
      return false;
    } else {
      return !startsWith(data, FTYP, end + 4) || bmffComplete(data.subarray(end));
    }
  }
}

/**
 * The offset just past the EOI of the JPEG at `start`, or -1 if it has none; the marker
 * segments are walked, skipping APPn, so an EXIF thumbnail's EOI does not count.
 */
function jpegEnd(data, start) {
  const n = data.length;
  let i = start + 2;
  while (i + 1 < n) {
    if (data[i] !== 0xff) return -1;
    const marker = data[i + 1];
    if (marker === 0xff) {
      i += 1;
    } else if (marker === 0xd9) {
      return i + 2;
    } else if (JPEG_STANDALONE.has(marker)) {
      i += 2;
    } else if (marker === 0xda) {
      if (i + 4 > n) return -1;
      i = nextJpegMarker(data, i + 2 + readUint(data, i + 2, i + 4));
      if (i < 0) return -1;
    } else {
      if (i + 4 > n) return -1;
      i += 2 + readUint(data, i + 2, i + 4);
    }
  }
  return -1;
}

/** Offset of the next marker after entropy-coded data (skips FF00 stuffing and RSTn). */
function nextJpegMarker(data, start) {
  let j = start;
  for (;;) {
    j = data.indexOf(0xff, j);
    if (j < 0 || j + 1 >= data.length) return -1;
    const following = data[j + 1];
    if (following === 0x00 || (following >= 0xd0 && following <= 0xd7) || following === 0xff) {
      j += 1;
      continue;
    }
    return j;
  }
}

function pngComplete(data) {
  let i = 8;
  while (i + 8 <= data.length) {
    const length = readUint(data, i, i + 4);
    const kind = latin1(data.subarray(i + 4, i + 8));
    i += 12 + length;
    if (kind === "IEND") return i <= data.length;
  }
  return false;
}

function bmffComplete(data) {
  let i = 0;
  const n = data.length;
  while (i + 8 <= n) {
    let size = readUint(data, i, i + 4);
    if (size === 0) return true;
    if (size === 1) {
      if (i + 16 > n) return false;
      size = readUint(data, i + 8, i + 16);
    }
    if (size < 8) return false;
    i += size;
  }
  return i === n;
}
