// Finding a digest of an image stated beside it, as grasp_sdk/stated_digests.py finds it.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import { Digests, digestTokens } from "../src/stated_digests.js";

const DATA = new TextEncoder().encode("\u00ff a photo ".repeat(1000));
const stated = (...texts) => new Digests(DATA).statedIn(digestTokens(texts));

for (const algorithm of ["md5", "sha1", "sha256", "sha512"]) {
  test(`every usual spelling of ${algorithm} is found`, async () => {
    const digest = createHash(algorithm).update(DATA).digest();
    const standard = digest.toString("base64");
    const spellings = [
      digest.toString("hex"), digest.toString("hex").toUpperCase(), `sha:${digest.toString("hex")};`,
      `IMG_${digest.toString("hex")}.jpg`, JSON.stringify({ hash: standard }).replaceAll("/", "\\/"),
      `photo=x&sum=${encodeURIComponent(standard)}&note=100%`, `/files/${digest.toString("base64url")}/meta`,
      `sum=${digest.toString("base64url").replace(/=+$/, "")}`,
      `"integrity": "${algorithm}-${standard}"`,  // Subresource Integrity
      `{"h": "${standard.replaceAll("+", "\\u002B").replaceAll("/", "\\u002F")}"}`,
      `{"h": "${encodeURIComponent(standard).replaceAll("%2F", "\\/")}"}`,
      `"a\\n${digest.toString("base64url")}\\n"`,
    ];
    for (const text of spellings) assert.equal(await stated(text), algorithm, text);
    assert.equal(await stated(new TextEncoder().encode(`{"h": "${standard}"}`)), algorithm);
  });
}

test("CRC-32 is found in hex or base64, CRC-32C in base64 only, as in grasp_sdk", async () => {
  const crc = (poly) => {
    let c = 0xffffffff;
    for (const byte of DATA) {
      c ^= byte;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    }
    return Buffer.from(Uint8Array.of(...[24, 16, 8, 0].map((s) => ((c ^ 0xffffffff) >>> s) & 0xff)));
  };
  assert.equal(await stated(crc(0xedb88320).toString("hex")), "crc32");
  assert.equal(await stated(`"crc32c": "${crc(0x82f63b78).toString("base64")}"`), "crc32c");
  assert.equal(await stated(crc(0x82f63b78).toString("hex")), null);
});

test("Dropbox's content_hash is found: the SHA-256 of its 4 MB blocks' SHA-256s", async () => {
  const big = new Uint8Array(9_500_000).map((_, i) => i % 251);
  const blocks = [0, 4 << 20, 8 << 20].map((i) => createHash("sha256").update(big.subarray(i, i + (4 << 20))).digest());
  const contentHash = createHash("sha256").update(Buffer.concat(blocks)).digest("hex");
  const arg = JSON.stringify({ path: "/Photos/me.jpg", mode: "add", content_hash: contentHash });
  assert.equal(await new Digests(big).statedIn(digestTokens([arg])), "Dropbox content_hash");
});

test("other digests, plain words and binary noise are not taken for one", async () => {
  const other = createHash("sha256").update("another photo").digest("hex");
  assert.equal(await stated(`${other} upload avatar camera filename 2026-12-06 deadbeef`), null);
  const noise = new Uint8Array(2_000_000).map((_, i) => (i * 2654435761) >>> 24);
  const started = performance.now();
  digestTokens([noise]);
  assert.ok(performance.now() - started < 1500);
});
