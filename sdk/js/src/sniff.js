/**
 * Recognise image bytes by their magic numbers, and tell a whole image from a piece of one
 * (the port of grasp_sdk/sniff.py). Uploads often label images
 * `application/octet-stream` (or lie), so the bytes decide. A chunked upload can carry
 * the first piece of an image: `isComplete` walks the container structure to tell.
 */

import { latin1, readUint, startsWith } from "./bytes.js";

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
// Signatures long enough (six bytes and more) that chance does not make them, and the bits of
// them that are known (RIFF....WEBP: not the size).
const SIGNATURES = [
  ["\x89PNG\r\n\x1a\n"],
  ["GIF87a"],
  ["GIF89a"],
  ["RIFF\0\0\0\0WEBP", "\xff\xff\xff\xff\0\0\0\0\xff\xff\xff\xff"],
  ...IMAGE_BRANDS.map((brand) => [`ftyp${brand}`]),
];
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
// How each encoder writes base64's two symbols: as is, URL-safe, percent-encoded, JSON-escaped.
const SLASHES = ["/", "\\\\/", "%2[Ff]", "_"];
const SLASH = `(?:${SLASHES.join("|")})`;
const PLUS = "(?:\\+|%2[Bb]|-)";
// The line breaks that MIME (76 characters a line), PEM (64) or `base64` (76) put in a base64
// run: CR, LF, raw, JSON-escaped or percent-encoded; up to two (CRLF) between two symbols.
const NEWLINES = ["[\\r\\n]", "\\\\[rn]", "%0[AaDd]"];
const NEWLINE = `(?:${NEWLINES.join("|")})`;
const BREAK = `${NEWLINE}{0,2}`;
const JPEG_WINDOW = 1536; // bytes of a candidate JPEG's start that decide whether it is one
// Characters of a base64 run read from a JPEG's start (the symbol before the match, see
// runStart): enough for the window's 2052 symbols with escapes and line breaks among them (a
// stream must hold back as many).
const BASE64_BUDGET = 4096;
// JPEG starts (raw SOIs, or base64 ones) looked at, each kind: chance makes a raw SOI once in
// 16 MB, a base64 one once in 11M symbols (see JPEG_STARTS).
const MAX_JPEG_STARTS = 4096;

/** A regex source of a base64 symbol whose bits under `mask` are `bits`, as any encoder writes it. */
function symbol(mask, bits) {
  const values = [...Array(64).keys()].filter((value) => (value & mask) === bits);
  const letters = values.filter((value) => value < 62).map((value) => ALPHABET[value]).join("");
  const forms = letters ? [letters.length === 1 ? letters : `[${letters}]`] : [];
  if (values.includes(62)) forms.push(PLUS);
  if (values.includes(63)) forms.push(SLASH);
  return forms.length === 1 ? forms[0] : `(?:${forms.join("|")})`;
}

/**
 * `signature` (the bits of it that `mask` sets) in base64, starting `align` bytes into a
 * 3-byte group of the encoded data: [the [mask, bits] that the symbol before the regexes pins
 * at `align` 1 or 2 (4 bits, or 2), [0, 0] at `align` 0; the regex sources of its symbols
 * from the first it wholly pins to the last it pins].
 */
function base64Start(signature, align, mask = "\xff".repeat(signature.length)) {
  const pad = (3 - ((align + signature.length) % 3)) % 3;
  const number = (text) => [..."\0".repeat(align) + text + "\0".repeat(pad)]
    .reduce((n, c) => (n << 8n) | BigInt(c.charCodeAt(0)), 0n);
  const known = number(mask);
  const value = number(signature) & known;
  const sextets = [];
  for (let i = ((align + signature.length + pad) / 3) * 4 - 1; i >= 0; i--) {
    sextets.push([Number((known >> BigInt(6 * i)) & 63n), Number((value >> BigInt(6 * i)) & 63n)]);
  }
  sextets.splice(0, align); // the symbols of the bytes before the signature: nothing pinned
  while (sextets.at(-1)[0] === 0) sextets.pop();
  const before = align ? sextets.shift() : [0, 0];
  return [before, sextets.map(([m, bits]) => symbol(m, bits))];
}

/** Regex sources of `symbols` one after another, a line break allowed between two. */
function written(symbols) {
  return [symbols[0], then([symbols[1]]), ...symbols.slice(2).map((s) => BREAK + s)];
}

/**
 * A regex source of a line break or none, then any of `alternatives`: written out so that each
 * of its own alternatives starts with a character (as grasp_sdk writes it for Python's regex
 * engine).
 */
function then(alternatives) {
  const either = alternatives.join("|");
  return `(?:${[either, ...NEWLINES.map((newline) => `${newline}${NEWLINE}?(?:${either})`)].join("|")})`;
}

/** Regex sources that together match any of `sequences` of sources, common starts shared. */
function alternatives(sequences) {
  const branches = new Map();
  for (const [first, ...rest] of sequences) branches.set(first, [...(branches.get(first) ?? []), rest]);
  return [...branches].map(([first, rests]) =>
    (rests.every((r) => r.length) ? first + group(alternatives(rests)) : first));
}

const group = (sources) => (sources.length === 1 ? sources[0] : `(?:${sources.join("|")})`);

// A JPEG's SOI is three bytes: a candidate must show a JPEG header after it (jpegHeader). In
// base64 from a group's start it is /9j/ (24 bits); 1 or 2 bytes into a group, it and the
// first two bits (11) of the marker byte after it pin 26 bits, 4 or 2 of them in the symbol
// before the regex's (see runStart).
const JPEG_STARTS = [
  base64Start("\xff\xd8\xff", 0),
  ...[1, 2].map((align) => base64Start("\xff\xd8\xff\xc0", align, "\xff\xff\xff\xc0")),
];
// Where an image starts inside a body the hook could not take apart, matched over the body
// read as latin-1, one character a byte (the regex of grasp_sdk/sniff.py): a signature, raw
// or in base64 at each of the three offsets into a 3-byte group an image can start at
// (gRPC-web text and base64'd containers put it at any); or a base64 SOI, in a group whose
// number is 1 + its offset into a group, plus a multiple of 3 (it is repeated for each way to
// write its `/` and the break after it).
const IMAGE_START = new RegExp([
  `\\x89PNG\\r\\n\\x1a\\n|GIF8[79]a|RIFF....WEBP|ftyp(?:${IMAGE_BRANDS.join("|")})`,
  ...alternatives(SIGNATURES.flatMap(([signature, mask]) =>
    [0, 1, 2].map((align) => written(base64Start(signature, align, mask)[1])))),
  ...SLASHES.map((slash) =>
    slash + then(JPEG_STARTS.map(([, s]) => `${s[1]}(${s.slice(2).map((x) => BREAK + x).join("")})`))),
].join("|"), "gs");
const SYMBOL_BEFORE = new RegExp(`(%2[BbFf]|\\\\/|[A-Za-z0-9+/_-])${BREAK}$`);
const BEFORE_WIDTH = 9; // characters of a symbol and a line break: %2F%0D%0A
// The body is searched a window at a time (no string of a whole large body); windows overlap
// by more than the longest match (RIFF....WEBP's 16 symbols, each 3 characters at most, %2F,
// with %0D%0A between: under 140), so none is missed. A candidate JPEG near a window's end is
// read on from the body, not the window.
const WINDOW = 1 << 20;
const OVERLAP = 256;

const HEADER_MARKER = new Uint8Array(256);
for (let m = 0xc0; m <= 0xcf; m++) HEADER_MARKER[m] = m === 0xc8 || m === 0xcc ? 0 : 1;
for (let m = 0xe0; m <= 0xef; m++) HEADER_MARKER[m] = 1;
for (const m of [0xdb, 0xdd, 0xfe]) HEADER_MARKER[m] = 1;
const COMMENT_SEEN = 16; // bytes of a comment (COM) too long to see the end of that tell it is text
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]/; // all but tab, LF and CR

/**
 * Whether `data[start:end]` starts as a JPEG: SOI, fill bytes, then a header segment whose
 * length lands on the next marker, within `data[start:limit]` (the bytes after the window,
 * where there are any), or, an APPn too long to see the end of, names itself: two ASCII
 * characters (JFIF, Exif, an XMP namespace, MPF, C2PA's JUMBF `JP`); a COM too long to see
 * the end of shows text, see commentText.
 */
function jpegHeader(data, start, end, limit = end) {
  const n = end - start;
  let i = 2;
  while (i < n && data[start + i] === 0xff) i++;
  if (i + 3 > n || !HEADER_MARKER[data[start + i]] || i === 2) return false;
  const marker = data[start + i];
  const length = (data[start + i + 1] << 8) | data[start + i + 2];
  const after = i + 1 + length;
  if (length < 2) return false;
  if (start + after < limit) return data[start + after] === 0xff;
  if (marker === 0xfe) return commentText(data.subarray(start + i + 3, end));
  if (marker < 0xe0 || marker > 0xef || i + 5 > n) return false;
  for (let k = start + i + 3; k < start + i + 5; k++) {
    if (data[k] <= 0x20 || data[k] >= 0x7f) return false;
  }
  return true;
}

/**
 * Whether `seen`, the start of a comment, is text: 16 bytes or more of UTF-8 (the last
 * character may be cut off), no control characters but tab, LF and CR.
 */
function commentText(seen) {
  if (seen.length < COMMENT_SEEN) return false;
  try {
    // streaming: a character cut off at the end waits for more, as a whole one would
    return !CONTROL.test(new TextDecoder("utf-8", { fatal: true }).decode(seen, { stream: true }));
  } catch {
    return false;
  }
}

// The value of each base64 symbol as any encoder writes it ('-' for '+', '_' for '/').
const SEXTET = new Int8Array(256).fill(-1);
[...ALPHABET].forEach((c, i) => { SEXTET[c.charCodeAt(0)] = i; });
SEXTET[0x2d] = 62; // -
SEXTET[0x5f] = 63; // _
const RUN_SYMBOLS = (JPEG_WINDOW / 3 + 1) * 4;
const RUN_SEXTETS = new Uint8Array(RUN_SYMBOLS);
const RUN_BYTES = new Uint8Array((RUN_SYMBOLS / 4) * 3);

/**
 * Where the base64 run of a JPEG start matched at `at` begins: there, or for an SOI `align`
 * (1 or 2) bytes into a group, at the symbol before, which must hold the SOI's first bits (see
 * JPEG_STARTS); -1 where it does not.
 */
function runStart(body, at, align) {
  if (!align) return at;
  const [[mask, bits]] = JPEG_STARTS[align];
  const from = Math.max(at - BEFORE_WIDTH, 0);
  const before = SYMBOL_BEFORE.exec(latin1(body.subarray(from, at)));
  if (before === null) return -1;
  const form = before[1]; // a symbol, or %2B, %2F, \/
  const value = form.length === 1 ? SEXTET[form.charCodeAt(0)] : form.at(-1).toLowerCase() === "b" ? 62 : 63;
  return (value & mask) === bits ? from + before.index : -1;
}

/**
 * The first JPEG_WINDOW bytes of the base64 run at `at` in `body`, whose first symbol is
 * symbol `align` (from 0) of its 4-symbol group (within BASE64_BUDGET characters of it: symbols, `\/`, `%2F`, `%2B`
 * in either case, and the line breaks of MIME, PEM or `base64`, raw, JSON-escaped or
 * percent-encoded: CR, LF, `\r`, `\n`, `%0D`, `%0A`), as any encoder wrote it: the group is
 * decoded from its start, and the `align` bytes before the run's own drop out. A view of a
 * buffer the next call reuses.
 */
function decodedRun(body, at, align) {
  const end = Math.min(at + BASE64_BUDGET, body.length);
  RUN_SEXTETS.fill(0, 0, align);
  let count = align;
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
  return RUN_BYTES.subarray(align, Math.min(align + JPEG_WINDOW, (count / 4) * 3));
}

/**
 * Whether `body` holds an image anywhere: raw, or base64 (standard, URL-safe,
 * percent-encoded or JSON-escaped) from any byte of the encoded data on, not only a 3-byte
 * group's first. For a body the hook leaves alone: on a `block` site it must not go. A JPEG
 * counts only with a header after its SOI, so that chance (one three-byte SOI in every 16 MB
 * of random bytes) does not refuse a video. The same answer as grasp_sdk's `carries_image`:
 * every start is looked at, one overlapping another too (`/9j` just before `/9j/4AAQ`), and a
 * body of more than MAX_JPEG_STARTS SOIs of either kind is taken to carry one (doubt
 * refuses). A base64 run may be broken into lines (MIME, PEM, a JSON string's `\n`), a
 * signature's or an SOI's symbols too. A JSON array of an image's byte values counts too.
 * @param {Uint8Array} body
 */
export function carriesImage(body) {
  let [rawStarts, base64Starts] = [0, 0];
  for (let start = 0; start < body.length; start += WINDOW) {
    const text = latin1(body.subarray(start, start + WINDOW + OVERLAP));
    // raw SOIs starting in this window, each checked on up to JPEG_WINDOW bytes of the body
    const here = body.subarray(0, Math.min(start + WINDOW, body.length));
    for (let p = here.indexOf(0xff, start); p >= 0; p = here.indexOf(0xff, p + 1)) {
      if (body[p + 1] !== 0xd8 || body[p + 2] !== 0xff) continue;
      if (rawStarts++ === MAX_JPEG_STARTS) return true;
      if (jpegHeader(body, p, Math.min(p + JPEG_WINDOW, body.length), body.length)) return true;
    }
    // signatures and base64 SOIs starting in this window, each SOI checked on its decoded run
    IMAGE_START.lastIndex = 0;
    for (let m = IMAGE_START.exec(text); m !== null && m.index < WINDOW; m = IMAGE_START.exec(text)) {
      const index = m.findIndex((g, i) => i > 0 && g !== undefined);
      if (index < 0) return true; // a signature
      const align = (index - 1) % 3; // which of JPEG_STARTS
      const at = runStart(body, start + m.index, align);
      if (at >= 0) {
        if (base64Starts++ === MAX_JPEG_STARTS) return true;
        const decoded = decodedRun(body, at, align);
        if (jpegHeader(decoded, 0, decoded.length)) return true;
      }
      IMAGE_START.lastIndex = m.index + 1; // every start: one may overlap the one before
    }
  }
  return arrayImage(body);
}

// The first 16 values of a JSON array of byte values (Dart's jsonEncode of a Uint8List,
// Gson's signed byte[]; byte_arrays.js), pretty-printed too, or percent-encoded in a form
// (URLSearchParams writes `%5B255%2C216`): 2.1 KB at most. The first three are an image's
// (JPEG, PNG, GIF, RIFF, an ftyp box's size), unsigned or signed.
const SPACE = "(?:[ \\t\\r\\n]{0,64}|(?:\\+|%20|%0[AaDd]|%09){0,16})";
const COMMA = `${SPACE}(?:,|%2[Cc])${SPACE}`;
const ARRAY_HEAD = new RegExp(`(?:\\[|%5[Bb])${SPACE}(?:${
  ["255,216,255", "-1,-40,-1", "137,80,78", "-119,80,78", "71,73,70", "82,73,70", "0,0,0"]
    .map((start) => start.split(",").join(COMMA)).join("|")})(?:${COMMA}-?\\d{1,3}){13}`, "g");
const ARRAY_HEAD_MAX = 2304;

/**
 * The bytes of byte values (0 to 255, or -128 to 127 when one is negative: Java's `byte`),
 * or null where they are not.
 * @param {number[]} values
 * @returns {Uint8Array | null}
 */
export function byteValues(values) {
  const signed = values.some((v) => v < 0);
  const [low, high] = signed ? [-128, 127] : [0, 255];
  if (values.some((v) => v < low || v > high)) return null;
  return Uint8Array.from(values, (v) => v & 0xff);
}

/** Whether `body` holds a JSON array whose first byte values start an image. */
function arrayImage(body) {
  for (let start = 0; start < body.length; start += WINDOW) {
    const text = latin1(body.subarray(start, start + WINDOW + ARRAY_HEAD_MAX));
    ARRAY_HEAD.lastIndex = 0;
    for (let m = ARRAY_HEAD.exec(text); m !== null && m.index < WINDOW; m = ARRAY_HEAD.exec(text)) {
      const bytes = byteValues(m[0].replace(/%[0-9A-Fa-f]{2}/g, " ").match(/-?\d+/g).map(Number));
      if (bytes !== null && imageType(bytes) !== null) return true;
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
