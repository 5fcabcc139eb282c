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

/**
 * The base64 of `signature` (at `offset` in its file) as any encoder writes it, as regex
 * sources: standard, URL-safe and percent-encoded; only the whole 3-byte groups it fills.
 */
function base64Forms(signature, offset) {
  const skip = (3 - (offset % 3)) % 3;
  const whole = signature.slice(skip, skip + Math.floor((signature.length - skip) / 3) * 3);
  const text = toBase64(fromLatin1(whole));
  const percent = text.replace(/[+/]/g, (c) => (c === "+" ? "%2[Bb]" : "%2[Ff]"));
  return [...new Set([text.replaceAll("+", "\\+"), toBase64(fromLatin1(whole), true), percent])];
}

const IMAGE_BRANDS = [...HEIF_BRANDS, "avif", "avis", "mif1", "msf1"].sort();
const SIGNATURES = [
  ["\xff\xd8\xff", 0],
  ["\x89PNG\r\n\x1a\n", 0],
  ["GIF87a", 0],
  ["GIF89a", 0],
  ...IMAGE_BRANDS.map((brand) => [`ftyp${brand}`, 4]),
];
// An image inside a body the hook could not take apart: raw (a JPEG's SOI with the marker of
// a header segment after it), or base64 as a JSON or form field carries it. Matched over the
// body read as latin-1, one character a byte (the regex of grasp_sdk/sniff.py).
const CARRIED_IMAGE = new RegExp([
  "\\xff\\xd8\\xff[\\xc0-\\xcf\\xdb\\xdd\\xe0-\\xef\\xfe]",
  `\\x89PNG\\r\\n\\x1a\\n|GIF8[79]a|RIFF....WEBP|ftyp(?:${IMAGE_BRANDS.join("|")})`,
  "UklG(?:[A-Za-z0-9+/_-]|%2[BbFf]){8}RUJQ", // RIFF....WEBP
  ...SIGNATURES.flatMap(([signature, at]) => base64Forms(signature, at)),
].join("|"), "s");
// The body is searched a window at a time (no string of a whole large body); windows overlap
// by more than the longest match (32 characters: UklG, 8 x %2F, RUJQ), so none is missed.
const WINDOW = 1 << 20;
const OVERLAP = 64;

/**
 * Whether `body` holds an image anywhere: raw, or base64 (standard, URL-safe or
 * percent-encoded). For a body the hook leaves alone: on a `block` site it must not go.
 * @param {Uint8Array} body
 */
export function carriesImage(body) {
  for (let start = 0; start < body.length; start += WINDOW) {
    if (CARRIED_IMAGE.test(latin1(body.subarray(start, start + WINDOW + OVERLAP)))) return true;
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
