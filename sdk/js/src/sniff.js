/**
 * Recognise image bytes by their magic numbers, and tell a whole image from a piece of one
 * (the port of grasp_sdk/sniff.py). Uploads often label images
 * `application/octet-stream` (or lie), so the bytes decide. A chunked upload can carry
 * the first piece of an image: `isComplete` walks the container structure to tell.
 */

import { latin1, readUint, startsWith, utf8 } from "./bytes.js";

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
// The body is searched a window at a time (no string of a whole large body: windowMatches);
// windows overlap by more than the longest match (RIFF....WEBP's 16 symbols, each 3
// characters at most, %2F, with %0D%0A between: under 140; the other searches' are shorter,
// but for the byte values' heads: HEAD_MAX), so none is missed. A candidate JPEG near a window's end is
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
 * group's first, or in any writing of bytes as text that a server reads back (see
 * writings). For a body the hook leaves alone: on a `block` site it must not go. The same
 * answer as grasp_sdk's `carries_image`.
 * @param {Uint8Array} body
 */
export function carriesImage(body) {
  for (const view of writings(body)) {
    if (showsImage(view)) return true;
  }
  return false;
}

/**
 * `body`, then the bytes a server reads back where it writes bytes as text, each of those in
 * turn (`depth` writings deep): percent-encoded (`requests`' form of a bytes value,
 * `http_build_query`), UTF-16 or UTF-32 text (.NET's `Encoding.Unicode`), a binary string (a
 * byte a character: `readAsBinaryString`, as UTF-8 or `\u00XX` escapes), a JSON string's
 * text where it is JSON again (an escaped backslash: PHP's `\\\/` for `/`, JSON written inside
 * a JSON string), and hex runs from an image's signature on (`bytes.hex()`, Postgres `\x`).
 * Each is read only when asked for.
 */
function* writings(body, depth = 2) {
  yield body;
  if (depth) {
    for (const read of [percentDecoded, wideTextAsUtf8, binaryString, jsonUnescaped]) {
      const view = read(body);
      if (view !== null) yield* writings(view, depth - 1);
    }
  }
  yield* hexRuns(body);
}

// bytes percent-encoded one after another, as a form writes binary (chance in other bytes:
// once in 10^19)
const PERCENT_RUN = /%[0-9A-Fa-f]{2}%[0-9A-Fa-f]{2}%[0-9A-Fa-f]{2}/g;
// The value of each hex digit, either case; -1 for other bytes.
const HEX_VALUE = new Int8Array(256).fill(-1);
[..."0123456789abcdef"].forEach((c, i) => {
  HEX_VALUE[c.charCodeAt(0)] = i;
  HEX_VALUE[c.toUpperCase().charCodeAt(0)] = i;
});

/** `body` with its escapes read, where it has PERCENT_RUN; else null. */
function percentDecoded(body) {
  return found(body, PERCENT_RUN) ? unquoteToBytes(body) : null;
}

/**
 * `data` with each `%XX` escape read as its byte, an invalid one left as written (Python's
 * `unquote_to_bytes`).
 * @param {Uint8Array} data
 */
export function unquoteToBytes(data) {
  const out = new Uint8Array(data.length);
  let n = 0;
  for (let i = 0; i < data.length; i++) {
    if (data[i] === 0x25 && i + 2 < data.length && HEX_VALUE[data[i + 1]] >= 0 && HEX_VALUE[data[i + 2]] >= 0) {
      out[n++] = (HEX_VALUE[data[i + 1]] << 4) | HEX_VALUE[data[i + 2]];
      i += 2;
    } else {
      out[n++] = data[i];
    }
  }
  return out.subarray(0, n);
}

// UTF-32 first: its little-endian mark starts as UTF-16's does
const MARKS = [[[0xff, 0xfe, 0, 0], "utf-32le"], [[0, 0, 0xfe, 0xff], "utf-32be"],
  [[0xff, 0xfe], "utf-16le"], [[0xfe, 0xff], "utf-16be"]];
// where a text of characters under U+0100 (a JSON body's start) has its zero bytes (1),
// without a mark: over the first WIDE_HEAD bytes, so that a video's box size (00 00 00 18)
// is no UTF-32
const ZEROS = [["utf-16le", [0, 1]], ["utf-16be", [1, 0]], ["utf-32le", [0, 1, 1, 1]], ["utf-32be", [1, 1, 1, 0]]];
const WIDE_HEAD = 64;

/** UTF-16 or UTF-32 text, by its mark or its zero bytes, as UTF-8; null for other bytes. */
function wideTextAsUtf8(body) {
  const marked = MARKS.find(([mark]) => startsWith(body, mark));
  if (marked) return utf8(wideText(body.subarray(marked[0].length), marked[1]));
  const head = body.subarray(0, WIDE_HEAD);
  const zeroed = ZEROS.find(([, zeros]) => head.length >= zeros.length
    && head.every((b, i) => Number(b === 0) === zeros[i % zeros.length]));
  return zeroed ? utf8(wideText(body, zeroed[0])) : null;
}

/** `data` decoded as UTF-16 or UTF-32 (`encoding`), what is no character as U+FFFD. */
function wideText(data, encoding) {
  if (encoding.startsWith("utf-16")) return new TextDecoder(encoding, { ignoreBOM: true }).decode(data);
  const view = new DataView(data.buffer, data.byteOffset, data.length);
  const units = new Uint16Array((data.length >> 1) + 1); // two a character at most
  let n = 0;
  for (let i = 0; i + 4 <= data.length; i += 4) {
    const point = view.getUint32(i, encoding === "utf-32le");
    if (point > 0x10ffff || (point >= 0xd800 && point < 0xe000)) {
      units[n++] = 0xfffd;
    } else if (point > 0xffff) { // a surrogate pair
      units[n++] = 0xd7c0 + (point >> 10);
      units[n++] = 0xdc00 | (point & 0x3ff);
    } else {
      units[n++] = point;
    }
  }
  if (data.length % 4) units[n++] = 0xfffd; // a character cut off at the end
  return UNITS_TEXT.decode(units.subarray(0, n));
}

// an image's signature in a binary string, in UTF-8 or escaped in JSON: JPEG's ÿØÿ, PNG's
// \x89PNG, WebP's RIFF (its size's four characters written any way) and WEBP; the others'
// are ASCII, found in the body as it is
const BINARY_SIGNATURE =
  /\xc3\xbf\xc3\x98\xc3\xbf|\xc2\x89PNG|\\u00[Ff][Ff]\\u00[Dd]8\\u00[Ff][Ff]|\\u0089PNG|RIFF.{4,24}WEBP/gs;
const JSON_ESCAPED = new Map([['"', 0x22], ["\\", 0x5c], ["/", 0x2f], ["b", 0x08], ["f", 0x0c], ["n", 0x0a], ["r", 0x0d], ["t", 0x09]]);
const JSON_UNICODE = /u([0-9A-Fa-f]{4})/y; // after a backslash
const UTF8_TEXT = new TextDecoder("utf-8", { ignoreBOM: true }); // invalid bytes as U+FFFD

/**
 * Text whose characters are bytes (JSON's escapes read), as those bytes; a character past
 * U+00FF is `?`. Null for a body with no image's signature written so. A loop, not a
 * replace: a call for each escape is slow (2 million of them: 0.8 s).
 */
function binaryString(body) {
  if (!found(body, BINARY_SIGNATURE)) return null;
  const text = UTF8_TEXT.decode(body);
  const out = new Uint8Array(text.length);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    let code = text.codePointAt(i);
    if (code > 0xffff) i++; // one character, two units
    else if (code === 0x5c) [code, i] = jsonEscape(text, i);
    out[n++] = code > 0xff ? 0x3f : code; // ?
  }
  return out.subarray(0, n);
}

/**
 * The character of the JSON escape at `i` in `text` (a backslash), and where the escape ends;
 * a backslash that starts none is itself.
 */
function jsonEscape(text, i) {
  JSON_UNICODE.lastIndex = i + 1;
  const unicode = JSON_UNICODE.exec(text);
  if (unicode !== null) return [parseInt(unicode[1], 16), i + 5];
  return JSON_ESCAPED.has(text[i + 1]) ? [JSON_ESCAPED.get(text[i + 1]), i + 1] : [0x5c, i];
}

// an escape escaped, what base64 in JSON written inside a JSON string shows that the body's
// own scan cannot read through: a slash escaped inside (\\/, or PHP's \\\/ throughout), a
// line break (\\n), a \\u escape
const ESCAPED_TWICE = /\\\\(?:\\?\/|[nru])/g;
const UTF8_ONLY = new TextDecoder("utf-8", { fatal: true });

/**
 * A JSON string's escapes read (but `\\u`), where the body is UTF-8 text that escapes an
 * escape: JSON whose strings hold JSON, one level down; null where it is not.
 */
function jsonUnescaped(body) {
  const escaped = (i) => body[i] === 0x5c && JSON_ESCAPED.has(String.fromCharCode(body[i + 1]));
  if (!found(body, ESCAPED_TWICE) || !isUtf8(body)) return null;
  const out = new Uint8Array(body.length);
  let n = 0;
  for (let i = 0; i < body.length; i++) {
    out[n++] = escaped(i) ? JSON_ESCAPED.get(String.fromCharCode(body[++i])) : body[i];
  }
  return out.subarray(0, n);
}

/** Whether `body` is UTF-8 text (binary fails at once: its copy would only cost time). */
function isUtf8(body) {
  try {
    UTF8_ONLY.decode(body);
    return true;
  } catch {
    return false;
  }
}

/** A regex source of `bytes` (latin-1) in hex of either case, as grasp_sdk writes it. */
function hex(bytes) {
  return Array.from(bytes, (c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("")
    .replace(/[a-f]/g, (c) => `[${c}${c.toUpperCase()}]`);
}

const HEX_START = new RegExp([
  hex("\xff\xd8\xff"), hex("\x89PNG\r\n\x1a\n"), `${hex("GIF8")}3[79]61`,
  `${hex("RIFF")}[0-9A-Fa-f]{8}${hex("WEBP")}`, `${hex("ftyp")}(?:${IMAGE_BRANDS.map(hex).join("|")})`,
].join("|"), "g");
const HEX_SHORTEST = 7; // bytes: an SOI, a marker, its length and the next byte
// What a body with more starts than are looked at is taken for (doubt refuses): a JPEG's
// start with a header.
const DOUBT = Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 2, 0xff);

/**
 * The bytes of each hex run from an image's signature on (JPEG_WINDOW of them) long enough
 * to show a JPEG's header: a colour (`#ffd8ff`) is none, however many there are.
 */
function* hexRuns(body) {
  let looked = 0;
  for (const [at] of windowMatches(body, HEX_START, OVERLAP)) {
    const run = hexBytes(body, at);
    if (run.length < HEX_SHORTEST) continue;
    if (looked++ === MAX_JPEG_STARTS) {
      yield DOUBT;
      return;
    }
    yield run;
  }
}

/** The bytes written in hex at `at` in `body`, up to JPEG_WINDOW of them. */
function hexBytes(body, at) {
  const out = new Uint8Array(JPEG_WINDOW);
  let n = 0;
  for (let p = at; n < JPEG_WINDOW && p + 1 < body.length && HEX_VALUE[body[p]] >= 0 && HEX_VALUE[body[p + 1]] >= 0; p += 2) {
    out[n++] = (HEX_VALUE[body[p]] << 4) | HEX_VALUE[body[p + 1]];
  }
  return out.subarray(0, n);
}

/**
 * Whether `body` as it is holds an image (see carriesImage). A JPEG counts only with a
 * header after its SOI, so that chance (one three-byte SOI in every 16 MB of random bytes)
 * does not refuse a video; every start is looked at, one overlapping another too (`/9j` just
 * before `/9j/4AAQ`), and a body of more than MAX_JPEG_STARTS SOIs of either kind is taken
 * to carry one (doubt refuses). A base64 run may be broken into lines (MIME, PEM, a JSON
 * string's `\n`), a signature's or an SOI's symbols too. A JSON array of an image's byte
 * values, or a typed array's object of them, counts too.
 */
function showsImage(body) {
  let looked = 0;
  for (let p = body.indexOf(0xff); p >= 0; p = body.indexOf(0xff, p + 1)) { // raw SOIs
    if (body[p + 1] !== 0xd8 || body[p + 2] !== 0xff) continue;
    if (looked++ === MAX_JPEG_STARTS) return true;
    if (jpegHeader(body, p, Math.min(p + JPEG_WINDOW, body.length), body.length)) return true;
  }
  looked = 0;
  // signatures and base64 SOIs, each SOI checked on its decoded run
  for (const [at, m] of windowMatches(body, IMAGE_START, OVERLAP, 1)) {
    const index = m.findIndex((g, i) => i > 0 && g !== undefined);
    if (index < 0) return true; // a signature
    const align = (index - 1) % 3; // which of JPEG_STARTS
    const start = runStart(body, at, align);
    if (start >= 0) {
      if (looked++ === MAX_JPEG_STARTS) return true;
      const decoded = decodedRun(body, start, align);
      if (jpegHeader(decoded, 0, decoded.length)) return true;
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
// The same of a typed array as JSON.stringify writes it, an object of its indices
// ({"0":255,"1":216,...}: a Uint8Array, read back with Object.values): 4.3 KB at most.
const OBJECT_HEAD = new RegExp(`\\{${SPACE}${Array.from({ length: 16 },
  (_, i) => `"${i}"${SPACE}:${SPACE}-?\\d{1,3}`).join(COMMA)}`, "g");
const HEAD_MAX = 4352;
const BYTE_VALUE = /(?<![\d"])-?\d+/g; // not an index's digits

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

/**
 * Whether `body` holds a JSON array, or a typed array's object, whose first byte values start
 * an image.
 */
function arrayImage(body) {
  for (const head of [ARRAY_HEAD, OBJECT_HEAD]) {
    for (const [, m] of windowMatches(body, head, HEAD_MAX)) {
      const bytes = byteValues(m[0].replace(/%[0-9A-Fa-f]{2}/g, " ").match(BYTE_VALUE).map(Number));
      if (bytes !== null && imageType(bytes) !== null) return true;
    }
  }
  return false;
}

/**
 * The matches of the global `regex` in `body` read as latin-1, one character a byte, a window
 * at a time (no string of a whole large body), each as [its offset in the body, the match].
 * Windows overlap by `overlap`, more than the longest match, so that none is missed. The
 * search goes on `step` characters after a match's start (1: every start, one overlapping the
 * one before), or by default after its end.
 */
function* windowMatches(body, regex, overlap, step = 0) {
  let from = 0; // where the search goes on, in the body
  for (let start = 0; start < body.length; start += WINDOW) {
    const text = windowText(body.subarray(start, start + WINDOW + overlap));
    for (regex.lastIndex = Math.max(from - start, 0); ; regex.lastIndex = from - start) {
      const m = regex.exec(text);
      if (m === null || m.index >= WINDOW) break;
      from = start + m.index + (step || m[0].length);
      yield [start + m.index, m];
    }
  }
}

// A window's code units, and their decoder (the platform's byte order)
const UNITS = new Uint16Array(WINDOW + HEAD_MAX);
const UNITS_TEXT = new TextDecoder(new Uint8Array(Uint16Array.of(1).buffer)[0] ? "utf-16le" : "utf-16be");

/**
 * `bytes` (a window) as a string of code points 0-255, as latin1 (bytes.js) makes it, but by
 * a native decode of them widened to UTF-16: 5 times faster, and each search reads the body
 * anew.
 */
function windowText(bytes) {
  UNITS.set(bytes);
  return UNITS_TEXT.decode(UNITS.subarray(0, bytes.length));
}

/** Whether `regex` (global) matches in `body`, matches no longer than OVERLAP. */
function found(body, regex) {
  return !windowMatches(body, regex, OVERLAP).next().done;
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
