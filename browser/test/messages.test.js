import assert from "node:assert/strict";
import { test } from "node:test";

import { loadPolicy } from "../sdk/index.js";
import { toBase64 } from "../sdk/src/bytes.js";
import { MessageRefused, noticeMessage, optionsFor, protectRequest, senderPage } from "../lib/messages.js";
import { PageSites } from "../lib/sites.js";

const site = (name, hosts, extra = {}) => ({
  name, enabled: true, hosts, paths: [], methods: ["POST"], formats: ["multipart"], fields: [],
  preset: "fast", size_mode: "any", on_no_face: "skip", on_failure: "pass", site_pipeline: null,
  max_bytes: 2000, length_headers: [], signed: false, ...extra,
});
const PAGES = new PageSites(loadPolicy({
  format: "grasp-guard-policy", version: 1, sites: [
    site("photos", ["photos.example"], { site_pipeline: { jpeg_quality: [70, 85], max_side: 1080 } }),
    site("strict", ["strict.example"], { size_mode: "max" }),
  ],
}), {});
const PAGE = "https://photos.example/compose";
// The smallest whole JPEG the SDK's sniffing accepts: SOI, an APP0, EOI.
const JPEG = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01,
  0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0xff, 0xd9]);
const request = (fields) => ({ kind: "protect", site: "photos", sizeMode: "any", data: toBase64(JPEG), ...fields });
const EXTENSION = "abcdefghijklmnopabcdefghijklmnop";

test("a content script in a frame of a tab is a sender, with its frame's URL; anything else is refused", () => {
  const ok = { id: EXTENSION, tab: { id: 3 }, frameId: 0, url: PAGE };
  assert.equal(senderPage(ok, EXTENSION), PAGE);
  const frame = "https://upload.photos.example/widget";
  assert.equal(senderPage({ ...ok, frameId: 2, url: frame }, EXTENSION), frame);
  // a frame the page wrote itself: its origin, its creator's
  const blank = { ...ok, frameId: 4, url: "about:blank", origin: "https://photos.example" };
  assert.equal(protectRequest(request(), senderPage(blank, EXTENSION), PAGES).site.name, "photos");
  for (const opaque of [{ ...blank, origin: "null" }, { ...blank, origin: undefined },
    { ...blank, url: "about:srcdoc", origin: "https://elsewhere.example" }]) {
    assert.throws(() => protectRequest(request(), senderPage(opaque, EXTENSION), PAGES), MessageRefused);
  }
  for (const bad of [{ ...ok, id: "another" }, { ...ok, tab: undefined }, { ...ok, frameId: undefined },
    { ...ok, url: undefined }, undefined]) {
    assert.throws(() => senderPage(bad, EXTENSION), MessageRefused);
  }
});

test("a protect request gets the page's site, the bytes and the site's options", () => {
  const checked = protectRequest(request(), PAGE, PAGES);
  assert.equal(checked.site.name, "photos");
  assert.deepEqual(checked.data, JPEG);
  assert.equal(checked.mediaType, "image/jpeg");
  assert.deepEqual(checked.options.toParams(),
    { preset: "fast", site: "photos", site_jpeg_quality: "70", site_max_side: "1080" });
});

const REFUSED = [
  ["not an object", "protect", /not a protect request/],
  ["another kind", { ...request(), kind: "status" }, /not a protect request/],
  ["a site of another page", request({ site: "strict" }), /not enabled on this page/],
  ["a site that does not exist", request({ site: "nope" }), /not enabled on this page/],
  ["an unknown size mode", request({ sizeMode: "huge" }), /unknown size mode/],
  ["bytes that are no base64", request({ data: "%%%%" }), /not a whole image/],
  ["bytes given raw", request({ data: JPEG }), /base64 text/],
  ["not an image", request({ data: toBase64(new TextEncoder().encode("<html></html>")) }), /not a whole image/],
  ["a truncated image", request({ data: toBase64(JPEG.slice(0, 12)) }), /not a whole image/],
  ["more than max_bytes", request({ data: "A".repeat(4000) }), /at most 2000 bytes/],
];

for (const [what, message, why] of REFUSED) {
  test(`a protect request is refused: ${what}`, () => {
    assert.throws(() => protectRequest(message, PAGE, PAGES), (e) => e instanceof MessageRefused && why.test(e.message));
  });
}

test("the site is the sender page's, never the message's: another page cannot borrow it", () => {
  assert.throws(() => protectRequest(request(), "https://evil.example/", PAGES), MessageRefused);
});

test("a request may make the size mode stricter than the site's, never looser", () => {
  const [photos, strict] = ["photos", "strict"].map((n) => PAGES.policy.get(n));
  assert.equal(optionsFor(photos, "any").sizeMode, "any");
  assert.equal(optionsFor(photos, "exact").sizeMode, "exact");
  assert.equal(optionsFor(strict, "any").sizeMode, "max");
  assert.equal(optionsFor(strict, "exact").sizeMode, "exact");
});

test("notices carry a known level and a bounded text", () => {
  assert.deepEqual(noticeMessage({ kind: "notice", level: "warning", text: "x".repeat(900) }),
    { level: "warning", text: "x".repeat(500) });
  for (const bad of [{ kind: "notice", level: "loud", text: "x" }, { kind: "notice", level: "info" }, null]) {
    assert.throws(() => noticeMessage(bad), MessageRefused);
  }
});
