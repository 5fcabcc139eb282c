// Multipart parsing and byte-exact splicing, on bodies the platform builds (Node's FormData
// serialiser, as a browser's) and on hand-made ones.

import assert from "node:assert/strict";
import { test } from "node:test";

import { multipart } from "../index.js";
import { concat, latin1, toBase64, utf8 } from "../src/bytes.js";
import { MalformedBody, applyEdits } from "../src/splice.js";
import { JPEG, flip } from "./helpers.js";

async function serialise(formData) {
  const response = new Response(formData);
  return { body: new Uint8Array(await response.arrayBuffer()), contentType: response.headers.get("content-type") };
}

test("the parts of a body the platform built are located byte for byte", async () => {
  const form = new FormData();
  form.append("caption", "a\r\nb");
  form.append("media", new File([JPEG], "me.jpg", { type: "image/jpeg" }));
  const { body, contentType } = await serialise(form);
  const parts = multipart.parse(body, multipart.boundaryOf(contentType));
  assert.deepEqual(parts.map((p) => [p.name, p.filename]), [["caption", null], ["media", "me.jpg"]]);
  assert.equal(latin1(body.subarray(parts[0].bodyStart, parts[0].bodyEnd)), "a\r\nb");
  assert.deepEqual(body.subarray(parts[1].bodyStart, parts[1].bodyEnd), JPEG);
  assert.equal(parts[1].headers["content-type"], "image/jpeg");
});

test("replacing an image changes its part's bytes and nothing else", async () => {
  const form = new FormData();
  form.append("command", "APPEND");
  form.append("media", new File([JPEG], "blob", { type: "application/octet-stream" }));
  const { body, contentType } = await serialise(form);
  const [slot] = multipart.findImages(body, contentType, ["media"]);
  assert.deepEqual([slot.location, slot.mediaType], ["multipart part 'media'", "image/jpeg"]);
  const out = applyEdits(body, slot.edits(flip(JPEG)));
  const start = latin1(body).indexOf(latin1(JPEG));
  assert.deepEqual(out, concat([body.subarray(0, start), flip(JPEG), body.subarray(start + JPEG.length)]));
  assert.deepEqual(multipart.findImages(body, contentType, ["other"]), []);
});

test("a part-level Content-Length follows the new content; base64 parts are written back alike", () => {
  const b64 = toBase64(JPEG);
  const body = utf8("preamble\r\n--b\r\nContent-Disposition: form-data; name=\"media_data\"\r\n" +
    `Content-Length: ${b64.length}\r\n\r\n${b64}\r\n--b--\r\nepilogue`);
  const [slot] = multipart.findImages(body, 'multipart/form-data; boundary="b"');
  assert.deepEqual(slot.data, JPEG);
  const grown = new Uint8Array([...JPEG, 0, 0, 0]);
  const out = latin1(applyEdits(body, slot.edits(grown)));
  const newB64 = toBase64(grown);
  assert.equal(out, `preamble\r\n--b\r\nContent-Disposition: form-data; name="media_data"\r\n` +
    `Content-Length: ${newB64.length}\r\n\r\n${newB64}\r\n--b--\r\nepilogue`);
});

test("header parameters are unquoted", () => {
  assert.deepEqual(multipart.headerParams('form-data; name="a\\"b"; filename=c.jpg'), { name: 'a"b', filename: "c.jpg" });
});

test("malformed bodies are refused, not guessed", () => {
  const bad = [
    ["multipart/form-data", "--b\r\n\r\nx\r\n--b--"],
    ["multipart/form-data; boundary=b", "no delimiter at all"],
    ["multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nunclosed"],
    ["multipart/form-data; boundary=b", "--b junk\r\n\r\nx\r\n--b--"],
    ["multipart/form-data; boundary=b", "--b\r\nno colon here\r\n\r\nx\r\n--b--"],
    [`multipart/form-data; boundary=${"x".repeat(201)}`, "--"],
  ];
  for (const [contentType, body] of bad) {
    assert.throws(() => multipart.findImages(utf8(body), contentType), MalformedBody, body);
  }
});

test("a new image holding the delimiter cannot be put back", () => {
  const body = concat([utf8("--b\r\nContent-Disposition: form-data; name=f\r\n\r\n"), JPEG, utf8("\r\n--b--\r\n")]);
  const [slot] = multipart.findImages(body, "multipart/form-data; boundary=b");
  assert.throws(() => slot.edits(concat([JPEG, utf8("\r\n--b")])), /delimiter/);
});

/** A form of a text part and a JSON part `name` holding `document` (as tests/sdk/test_multipart.py builds). */
const jsonPartForm = (name, document, extra = "") => concat([
  utf8('--b\r\nContent-Disposition: form-data; name="caption"\r\n\r\nhi\r\n' +
    `--b\r\nContent-Disposition: form-data; name="${name}"\r\nContent-Type: application/json\r\n${extra}\r\n`),
  document,
  utf8("\r\n--b--\r\n"),
]);

test("a JSON part holding a base64 photo is read after a byte-order mark, the photo put back in place", () => {
  const b64 = toBase64(JPEG);
  const body = jsonPartForm("meta", concat([Uint8Array.of(0xef, 0xbb, 0xbf), utf8(` ${JSON.stringify({ kind: "avatar ☕😀", image: b64 })}`)]));
  const [slot, ...rest] = multipart.findImages(body, "multipart/form-data; boundary=b");
  assert.deepEqual(rest, []);
  assert.equal(slot.location, "multipart part 'meta' → json $.image");
  assert.deepEqual(slot.data, JPEG);
  const out = applyEdits(body, slot.edits(flip(JPEG)));
  assert.equal(latin1(out), latin1(body).replace(b64, toBase64(flip(JPEG))));
  assert.equal(multipart.findImages(body, "multipart/form-data; boundary=b", ["image"]).length, 1);
  assert.equal(multipart.findImages(body, "multipart/form-data; boundary=b", ["meta"]).length, 1);
  assert.deepEqual(multipart.findImages(body, "multipart/form-data; boundary=b", ["caption"]), []);
});

test("a JSON part stating its own length is not read", () => {
  const document = utf8(JSON.stringify({ image: toBase64(JPEG) }));
  const body = jsonPartForm("meta", document, `Content-Length: ${document.length}\r\n`);
  assert.deepEqual(multipart.findImages(body, "multipart/form-data; boundary=b"), []);
  assert.equal(multipart.findImages(jsonPartForm("meta", document), "multipart/form-data; boundary=b").length, 1);
});
