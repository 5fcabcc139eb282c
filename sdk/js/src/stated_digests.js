/**
 * Find where an upload states a digest of its image (the port of grasp_sdk/stated_digests.py).
 *
 * A site may check the image against a checksum sent beside it under any name: a JSON
 * metadata part's `md5Hash` (Google Cloud Storage), a form field `file_sha1`, an
 * `X-Content-SHA256` header. A protected image would then be refused by the site, and the
 * upload lost. So each token of hex or base64 (standard or URL-safe) text of a digest's length
 * is compared with the image's CRC-32, MD5, SHA-1, SHA-256 and SHA-512, and CRC-32C where it
 * is written as base64; each digest is computed once, only for the lengths some token has.
 * The SHA digests need WebCrypto, which a page has only in a secure context: elsewhere they
 * are not looked for.
 */

import { fromBase64, latin1 } from "./bytes.js";

const B64 = "A-Za-z0-9+/_\\-";
const B64_NO_SLASH = "A-Za-z0-9+_\\-";
const B64_STANDARD = "A-Za-z0-9+/";
const HEX = "0-9A-Fa-f";
const b64Lengths = (c) => `[${c}]{6}==|[${c}]{22}(?:==)?|[${c}]{27}=?|[${c}]{43}=?|[${c}]{86}(?:==)?`;
// A run of the characters of tokens, their escapes included: the patterns read only these.
const RUN = new RegExp(`[${B64}=%\\\\]{6,}`, "g");
const BASE64_TOKENS = [
  // base64 with slashes, delimited by anything else
  new RegExp(`(?<![${B64}])(?:${b64Lengths(B64)})(?![${B64}=])`, "g"),
  // base64 without slashes (URL-safe, or in a URL path), slashes delimiting
  new RegExp(`(?<![${B64_NO_SLASH}])(?:${b64Lengths(B64_NO_SLASH)})(?![${B64_NO_SLASH}=])`, "g"),
  // standard base64, - and _ delimiting (Subresource Integrity's sha256-<base64>)
  new RegExp(`(?<![${B64_STANDARD}])(?:${b64Lengths(B64_STANDARD)})(?![${B64_STANDARD}=])`, "g"),
];
// A JSON string escape: \uXXXX, or \ and one character.
const JSON_ESCAPE = /\\(?:u([0-9A-Fa-f]{4})|([\s\S]))/g;
// hex, delimited by anything not hex (`sha256:…`, `IMG_<md5>.jpg`)
const HEX_TOKENS = new RegExp(`(?<![${HEX}])(?:[${HEX}]{128}|[${HEX}]{64}|[${HEX}]{40}|[${HEX}]{32}|[${HEX}]{8})(?![${HEX}])`, "g");

/** [name, digest length, function, whether hex tokens count] of each algorithm looked for. */
const ALGORITHMS = [
  ["crc32", 4, (d) => crcBytes(d, 0xedb88320), true],
  // only for base64 tokens (as Google Cloud Storage writes it), as in grasp_sdk
  ["crc32c", 4, (d) => crcBytes(d, 0x82f63b78), false],
  ["md5", 16, md5, true],
  ["sha1", 20, (d) => sha("SHA-1", d), true],
  ["sha256", 32, (d) => sha("SHA-256", d), true],
  ["sha512", 64, (d) => sha("SHA-512", d), true],
  ["Dropbox content_hash", 32, dropboxContentHash, true],
];
const DROPBOX_BLOCK = 4 << 20;

/** Dropbox's `content_hash`: the SHA-256 of the SHA-256s of the file's 4 MB blocks (null without WebCrypto). */
async function dropboxContentHash(data) {
  const hashes = [];
  for (let i = 0; i < data.length; i += DROPBOX_BLOCK) {
    const hash = await sha("SHA-256", data.subarray(i, i + DROPBOX_BLOCK));
    if (hash === null) return null;
    hashes.push(...hash);
  }
  return sha("SHA-256", new Uint8Array(hashes));
}

/**
 * The digest-length tokens of `texts` (strings or bytes), each run of token characters
 * read as it is, with JSON's `\/` undone and with percent-escapes decoded: hex of the
 * values decoded from hex tokens and from base64 tokens.
 * @param {Iterable<string | Uint8Array>} texts
 * @returns {{fromHex: Set<string>, fromBase64: Set<string>}}
 */
export function digestTokens(texts) {
  const tokens = { fromHex: new Set(), fromBase64: new Set() };
  for (const text of texts) {
    for (const [run] of (typeof text === "string" ? text : latin1(text)).matchAll(RUN)) {
      const readings = new Set(run.includes("\\") ? [run, jsonUnescaped(run)] : [run]);
      if (run.includes("%")) for (const reading of [...readings]) readings.add(unquote(reading));
      for (const reading of readings) {
        for (const [token] of reading.matchAll(HEX_TOKENS)) tokens.fromHex.add(token.toLowerCase());
        for (const pattern of BASE64_TOKENS) {
          for (const [token] of reading.matchAll(pattern)) {
            const bare = token.replace(/=+$/, "");
            const value = fromBase64((bare + "=".repeat((4 - (bare.length % 4)) % 4)).replaceAll("-", "+").replaceAll("_", "/"));
            if (value !== null) tokens.fromBase64.add(hex(value));
          }
        }
      }
    }
  }
  return tokens;
}

/** `run` with JSON's escapes undone: `\/` and `\u` of ASCII to their character, every other
 * escape (`\n`, `\"`…) to a space, which delimits a token. */
function jsonUnescaped(run) {
  return run.replace(JSON_ESCAPE, (_, code, char) => {
    if (code !== undefined) return parseInt(code, 16) < 0x80 ? String.fromCharCode(parseInt(code, 16)) : " ";
    return char === "/" ? "/" : " ";
  });
}

/** Both token sets of `a` and `b`. */
export function joinTokens(a, b) {
  return { fromHex: new Set([...a.fromHex, ...b.fromHex]), fromBase64: new Set([...a.fromBase64, ...b.fromBase64]) };
}

/** Each `%XX` decoded to its byte (as a latin-1 character); anything else kept. */
export function unquote(text) {
  return text.replace(/%[0-9A-Fa-f]{2}/g, (escape) => String.fromCharCode(parseInt(escape.slice(1), 16)));
}

/** The digests of one image, each computed when first asked for. */
export class Digests {
  constructor(data) {
    this.data = data;
    this.values = new Map();
  }

  /**
   * The name of the algorithm whose digest of the image one of `tokens` is, or null.
   * @returns {Promise<string | null>}
   */
  async statedIn(tokens) {
    const lengths = (set) => new Set([...set].map((value) => value.length / 2));
    const [base64Lengths, hexLengths] = [lengths(tokens.fromBase64), lengths(tokens.fromHex)];
    for (const [name, length, digest, hexCounts] of ALGORITHMS) {
      if (!base64Lengths.has(length) && !(hexCounts && hexLengths.has(length))) continue;
      if (!this.values.has(name)) {
        const value = await digest(this.data);
        this.values.set(name, value === null ? null : hex(value));
      }
      const value = this.values.get(name);
      if (value !== null && (tokens.fromBase64.has(value) || (hexCounts && tokens.fromHex.has(value)))) return name;
    }
    return null;
  }
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha(algorithm, data) {
  const subtle = globalThis.crypto?.subtle;
  return subtle ? new Uint8Array(await subtle.digest(algorithm, data)) : null;
}

const CRC_TABLES = new Map();

/** A reflected CRC-32 (CRC-32 or CRC-32C by `poly`), big-endian. */
function crcBytes(data, poly) {
  if (!CRC_TABLES.has(poly)) {
    CRC_TABLES.set(poly, Uint32Array.from({ length: 256 }, (_, byte) => {
      let crc = byte;
      for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ poly : crc >>> 1;
      return crc >>> 0;
    }));
  }
  const table = CRC_TABLES.get(poly);
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  crc = (crc ^ 0xffffffff) >>> 0;
  return Uint8Array.of(crc >>> 24, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff);
}

// MD5 (RFC 1321): WebCrypto has none, and Google Cloud Storage's md5Hash is one.
const MD5_SHIFTS = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const MD5_K = Uint32Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32));

function md5(data) {
  const padded = new Uint8Array((((data.length + 8) >> 6) + 1) * 64);
  padded.set(data);
  padded[data.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, (data.length * 8) >>> 0, true);
  view.setUint32(padded.length - 4, Math.floor(data.length / 2 ** 29), true);
  const state = Uint32Array.of(0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476);
  const words = new Uint32Array(16);
  for (let block = 0; block < padded.length; block += 64) {
    for (let i = 0; i < 16; i++) words[i] = view.getUint32(block + 4 * i, true);
    let [a, b, c, d] = state;
    for (let i = 0; i < 64; i++) {
      const round = i >> 4;
      const f = round === 0 ? (b & c) | (~b & d) : round === 1 ? (d & b) | (~d & c)
        : round === 2 ? b ^ c ^ d : c ^ (b | ~d);
      const g = round === 0 ? i : round === 1 ? (5 * i + 1) & 15 : round === 2 ? (3 * i + 5) & 15 : (7 * i) & 15;
      const sum = (a + f + MD5_K[i] + words[g]) >>> 0;
      const shift = MD5_SHIFTS[round * 4 + (i & 3)];
      [a, d, c] = [d, c, b];
      b = (b + ((sum << shift) | (sum >>> (32 - shift)))) >>> 0;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
  }
  const out = new DataView(new ArrayBuffer(16));
  state.forEach((word, i) => out.setUint32(4 * i, word, true));
  return new Uint8Array(out.buffer);
}
