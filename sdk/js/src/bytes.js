/**
 * Byte helpers shared by the body parsers: search, compare, join, text and base64.
 * Bodies are Uint8Arrays throughout; text that may hold any byte is read as latin-1.
 */

const UTF8 = new TextEncoder();
// A byte-order mark is kept, as Python's bytes.decode("utf-8") keeps it.
const UTF8_DECODER = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The UTF-8 bytes of `text`. */
export function utf8(text) {
  return UTF8.encode(text);
}

/** `bytes` decoded as UTF-8; throws TypeError on invalid UTF-8. */
export function fromUtf8(bytes) {
  return UTF8_DECODER.decode(bytes);
}

/** `bytes` as a string of code points 0-255 (round-trips any byte). */
export function latin1(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return out;
}

/** The bytes of a string of code points 0-255; throws RangeError past 255. */
export function fromLatin1(text) {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) throw new RangeError(`not a latin-1 character at ${i}`);
    out[i] = code;
  }
  return out;
}

/** The first offset of `needle` in `haystack` at or after `from` (before `to`), or -1. */
export function indexOf(haystack, needle, from = 0, to = haystack.length) {
  const first = needle[0];
  const last = Math.min(to, haystack.length) - needle.length;
  outer: for (let i = Math.max(from, 0); i <= last; i++) {
    if (haystack[i] !== first) continue;
    for (let j = 1; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

/** Whether `bytes` at `offset` starts with `prefix`. */
export function startsWith(bytes, prefix, offset = 0) {
  if (offset + prefix.length > bytes.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (bytes[offset + i] !== prefix[i]) return false;
  }
  return true;
}

/** Whether two byte arrays hold the same bytes. */
export function equal(a, b) {
  return a.length === b.length && startsWith(a, b);
}

/** The byte arrays joined into one. */
export function concat(chunks) {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let pos = 0;
  for (const chunk of chunks) {
    out.set(chunk, pos);
    pos += chunk.length;
  }
  return out;
}

/** Big-endian unsigned integer of `bytes[start:end]` (exact up to 2 ** 53). */
export function readUint(bytes, start, end) {
  let value = 0;
  for (let i = start; i < end; i++) value = value * 256 + (bytes[i] ?? 0);
  return value;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** `bytes` as padded base64 text, in the standard or the URL-safe alphabet. */
export function toBase64(bytes, urlsafe = false) {
  const alphabet = urlsafe ? B64_URLSAFE : B64;
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + alphabet[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + "==";
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + "=";
  }
  return out;
}

/**
 * Decode base64 `text` strictly (like Python's `b64decode(validate=True)`): only the
 * alphabet's characters, padding only at the end, a length that is a multiple of 4.
 * Returns null when `text` is not valid base64.
 */
export function fromBase64(text, urlsafe = false) {
  const alphabet = urlsafe ? B64_URLSAFE : B64;
  if (text.length % 4 !== 0) return null;
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - padding);
  let pos = 0;
  for (let i = 0; i < text.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const c = text[i + j];
      const value = alphabet.indexOf(c);
      const isPadding = c === "=" && i + 4 === text.length && j >= 4 - padding;
      if (value < 0 && !isPadding) return null;
      n = n * 64 + (value < 0 ? 0 : value);
    }
    for (let k = 0; k < 3 && pos < out.length; k++) out[pos++] = (n >> (16 - 8 * k)) & 0xff;
  }
  return out;
}
