// Images carried as JSON arrays of byte values (as tests/sdk/test_byte_arrays.py checks of
// grasp_sdk).

import assert from "node:assert/strict";
import { test } from "node:test";

import { findJsonImages } from "../index.js";
import { toBase64, utf8 } from "../src/bytes.js";
import { applyEdits } from "../src/splice.js";
import { JPEG } from "./helpers.js";

const NEW = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, ...Array.from({ length: 512 }, (_, i) => i % 256)]);
const signedOf = (data) => Array.from(data, (b) => (b > 127 ? b - 256 : b));

for (const [name, stringify] of [
  ["compact", (o) => JSON.stringify(o)],
  ["spaced", (o) => JSON.stringify(o).replaceAll(",", ", ").replaceAll(":", ": ")],
  ["indented", (o) => JSON.stringify(o, null, 2)],
]) {
  for (const signed of [false, true]) {
    test(`an image as byte values is found and replaced the same way (${name}, ${signed ? "signed" : "unsigned"})`, () => {
      const values = signed ? signedOf(JPEG) : Array.from(JPEG);
      const body = utf8(stringify({ caption: "me", photo: values, sizes: Array.from({ length: 40 }, (_, i) => i) }));
      const [slot, ...rest] = findJsonImages(body);
      assert.equal(rest.length, 0);
      assert.deepEqual([slot.location, slot.mediaType], ["json $.photo", "image/jpeg"]);
      assert.deepEqual(slot.data, JPEG);
      const expected = stringify({ caption: "me", photo: signed ? signedOf(NEW) : Array.from(NEW), sizes: Array.from({ length: 40 }, (_, i) => i) });
      assert.equal(new TextDecoder().decode(applyEdits(body, slot.edits(NEW))), expected);
    });
  }
}

for (const values of [
  Array.from({ length: 200 }, (_, i) => i),
  [255, 216, 255, 224, ...new Array(20).fill(0), 256],
  [-1, -40, -1, -32, ...new Array(20).fill(0), 200],
  [255, 216, 255, 224, ...new Array(20).fill(0), 1.5],
]) {
  test(`an array that is no image is left (${values.at(-1)})`, () => {
    assert.deepEqual(findJsonImages(utf8(JSON.stringify({ photo: values }))), []);
  });
}

test("a byte-array image beside a base64 one", () => {
  const body = utf8(JSON.stringify({ a: Array.from(JPEG), b: [toBase64(JPEG), 1] }));
  assert.deepEqual(findJsonImages(body).map((s) => s.location), ["json $.a", "json $.b[0]"]);
});

test("a photo of megabytes as byte values is read (a regex over it would run out of stack)", () => {
  const big = new Uint8Array(5_000_000).map((_, i) => (i < 4 ? [0xff, 0xd8, 0xff, 0xe0][i] : i % 256));
  const [slot] = findJsonImages(utf8(JSON.stringify({ photo: Array.from(big) })));
  assert.equal(slot.data.length, big.length);
});
