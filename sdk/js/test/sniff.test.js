// Image types by their magic bytes, and whole images told from pieces.

import assert from "node:assert/strict";
import { test } from "node:test";

import { carriesImage, imageType, isComplete } from "../index.js";
import { concat, toBase64, utf8 } from "../src/bytes.js";
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

test("an image carried anywhere in a body: raw, base64, URL-safe or percent-encoded", () => {
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
  const webp = utf8("RIFF\x10\0\0\0WEBPVP8 ");
  const images = [JPEG, png, utf8("GIF87a\x01\0"), utf8("GIF89a\x01\0"), webp, ftyp("heic"), ftyp("avif")];
  const within = (text) => utf8(`{"user": 1, "photo": "${text}", "done": true}`);
  for (const image of images) {
    const b64 = toBase64(image);
    const bodies = [
      image,
      concat([utf8("--b\r\n\r\n"), image]),
      within(b64),
      within(`data:image/png;base64,${b64}`),
      within(toBase64(image, true)),  // URL-safe
      utf8(`photo=${encodeURIComponent(b64)}`),
      utf8(`a=1&photo=${encodeURIComponent(toBase64(concat([new Uint8Array(3), image])))}`),
      utf8(`photo=${b64.replaceAll("/", "%2f").replaceAll("+", "%2b")}`),
    ];
    for (const body of bodies) {
      assert.equal(carriesImage(body), true, `${imageType(image)}: ${new TextDecoder("latin1").decode(body.subarray(0, 60))}`);
    }
  }
  assert.equal(carriesImage(utf8("/9j/4AAQ")), true);  // a JPEG's base64, however short
  assert.equal(carriesImage(utf8("UklG%2F%2F%2F%2FAAAARUJQ")), true);
  // a match across the 1 MiB windows the body is read in
  for (const at of [(1 << 20) - 20, (1 << 20) - 2, 1 << 20, 2 << 20]) {
    const body = new Uint8Array((2 << 20) + 100);
    body.set(utf8("UklG%2F%2F%2F%2F%2F%2F%2F%2FRUJQ"), at);
    assert.equal(carriesImage(body), true, String(at));
  }
});

test("no image: plain text, a JPEG SOI with no header marker after it, pieces of magic", () => {
  const bodies = [
    new Uint8Array(0), utf8("hello"), utf8('{"text": "hi"}'), utf8("a=1&b=two%2Fthree"),
    new Uint8Array([0xff, 0xd8, 0xff]), new Uint8Array([0xff, 0xd8, 0xff, 0x00, 0x10]), new Uint8Array([0xff, 0xd8, 0xff, 0xd9]),
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a]), utf8("GIF88a"), utf8("RIFF\x10\0\0\0AVI LIST"), utf8("....ftypisommp42"), utf8("UklGRiQAAABXQVZF"),
    utf8("/9j"), utf8("%2F9j/"), utf8("r0lgodlh"), new Uint8Array(3 << 20),
  ];
  for (const body of bodies) assert.equal(carriesImage(body), false, new TextDecoder("latin1").decode(body.subarray(0, 40)));
});
