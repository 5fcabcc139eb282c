/**
 * Find where an upload states a digest of its image (the port of grasp_sdk/stated_digests.py).
 *
 * A site may check the image against a checksum sent beside it under any name: a JSON
 * metadata part's `md5Hash` (Google Cloud Storage), a form field `file_sha1`, an
 * `X-Content-SHA256` header. A protected image would then be refused by the site, and the
 * upload lost. So every run of hex or base64 (standard or URL-safe) text of a digest's length
 * is compared with the image's CRC-32, CRC-32C, MD5, SHA-1, SHA-256 and SHA-512; digests are
 * computed only for the lengths some run has. The SHA digests need WebCrypto, which a page
 * has only in a secure context: elsewhere they are not looked for.
 */

import { fromBase64, latin1 } from "./bytes.js";

const RUN = /[A-Za-z0-9+/_-]+={0,2}/g;
const HEX = /^[0-9A-Fa-f]+$/;

/** Digest length in bytes → [name, function] of each algorithm with that length. */
const ALGORITHMS = new Map([
  [4, [["crc32", (d) => crcBytes(d, 0xedb88320)], ["crc32c", (d) => crcBytes(d, 0x82f63b78)]]],
  [16, [["md5", md5]]],
  [20, [["sha1", (d) => sha("SHA-1", d)]]],
  [32, [["sha256", (d) => sha("SHA-256", d)]]],
  [64, [["sha512", (d) => sha("SHA-512", d)]]],
]);

/**
 * The name of the algorithm whose digest of `data` `text` states, or null.
 * @param {Uint8Array | string} text
 * @param {Uint8Array} data
 * @returns {Promise<string | null>}
 */
export async function statedDigest(text, data) {
  for (const [length, values] of candidates(typeof text === "string" ? text : latin1(text))) {
    for (const [name, digest] of ALGORITHMS.get(length)) {
      const value = await digest(data);
      if (value !== null && values.has(hex(value))) return name;
    }
  }
  return null;
}

/** Hex of the byte strings of a digest's length that runs of `text` decode to, by length
 * (a run with slashes, a URL path, is also read piece by piece). */
function candidates(text) {
  const found = new Map();
  for (const [run] of text.matchAll(RUN)) {
    const pieces = run.includes("/") ? [run, ...run.split("/")] : [run];
    for (const value of pieces.flatMap(decoded)) {
      if (!found.has(value.length)) found.set(value.length, new Set());
      found.get(value.length).add(hex(value));
    }
  }
  return found;
}

/** What `run` may be the text of: hex, or base64 (padded, or unpadded for digests of 16
 * bytes and more: a six-letter word is unpadded base64 of four bytes). */
function decoded(run) {
  const values = [];
  if (run.length % 2 === 0 && ALGORITHMS.has(run.length / 2) && HEX.test(run)) {
    values.push(Uint8Array.from(run.match(/../g), (pair) => parseInt(pair, 16)));
  }
  const bare = run.replace(/=+$/, "");
  const size = Math.floor((bare.length * 3) / 4);
  if (ALGORITHMS.has(size) && bare.length % 4 !== 1 && (size >= 16 || run.length % 4 === 0)) {
    const padded = bare + "=".repeat((4 - (bare.length % 4)) % 4);
    const value = fromBase64(padded.replaceAll("-", "+").replaceAll("_", "/"));
    if (value !== null) values.push(value);
  }
  return values.filter((value) => ALGORITHMS.has(value.length));
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
