// Image types by their magic bytes, and whole images told from pieces.

import assert from "node:assert/strict";
import { test } from "node:test";

import { imageType, isComplete } from "../index.js";
import { concat, utf8 } from "../src/bytes.js";
import { JPEG } from "./helpers.js";

const ftyp = (brand, compatible = []) => {
  const box = utf8(`....ftyp${brand}\0\0\0\0${compatible.join("")}`);
  new DataView(box.buffer).setUint32(0, box.length);
  return box;
};

test("magic bytes decide the type", () => {
  const cases = [
    [JPEG, "image/jpeg"],
    [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]), "image/png"],
    [utf8("GIF89a...."), "image/gif"],
    [utf8("RIFF\x10\0\0\0WEBPVP8 "), "image/webp"],
    [ftyp("heic"), "image/heic"],
    [ftyp("mif1", ["avif"]), "image/avif"],
    [ftyp("mif1", ["miaf"]), "image/heif"],
    [ftyp("isom", ["mp42"]), null],
    [utf8("<html>"), null],
    [new Uint8Array(0), null],
  ];
  for (const [data, expected] of cases) assert.equal(imageType(data), expected);
});

test("a whole JPEG is complete; its pieces are not", () => {
  assert.equal(isComplete(JPEG, "image/jpeg"), true);
  for (const end of [2, 20, 300, JPEG.length - 1]) assert.equal(isComplete(JPEG.subarray(0, end), "image/jpeg"), false, String(end));
});

test("PNG, GIF, WebP and BMFF pieces are told by their structure", () => {
  const chunk = (kind, length = 0) => concat([new Uint8Array([0, 0, 0, length]), utf8(kind), new Uint8Array(length + 4)]);
  const png = concat([new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", 13), chunk("IEND")]);
  assert.equal(isComplete(png, "image/png"), true);
  assert.equal(isComplete(png.subarray(0, png.length - 3), "image/png"), false);
  assert.equal(isComplete(utf8("GIF89a...;\0\0"), "image/gif"), true);
  assert.equal(isComplete(utf8("GIF89a..."), "image/gif"), false);
  assert.equal(isComplete(utf8("RIFF\x04\0\0\0WEBP"), "image/webp"), true);
  assert.equal(isComplete(utf8("RIFF\x40\0\0\0WEBP"), "image/webp"), false);
  const heic = ftyp("heic");
  assert.equal(isComplete(heic, "image/heic"), true);
  assert.equal(isComplete(concat([heic, new Uint8Array([0, 0, 0, 16, 0x6d, 0x64, 0x61, 0x74])]), "image/heic"), false);
});

test("what follows a JPEG must be whole too: MPO frames, a motion photo's video", () => {
  const box = (kind, length) => {
    const data = concat([new Uint8Array(4), utf8(kind), new Uint8Array(length)]);
    new DataView(data.buffer).setUint32(0, data.length);
    return data;
  };
  const mpo = concat([JPEG, JPEG]);
  const motion = concat([JPEG, box("ftyp", 16), box("mdat", 4000)]);
  for (const whole of [mpo, motion, concat([JPEG, new Uint8Array(10)]), concat([JPEG, utf8("SEFHjunkSEFT")])]) {
    assert.equal(isComplete(whole, "image/jpeg"), true);
  }
  for (const piece of [mpo.subarray(0, JPEG.length + 2), mpo.subarray(0, mpo.length - 1), motion.subarray(0, JPEG.length + 100)]) {
    assert.equal(isComplete(piece, "image/jpeg"), false);
  }
});
