// protectFile against a stand-in service on 127.0.0.1: the protected copy keeps name and
// type; on_failure pass returns the original with the reason, block throws.

import assert from "node:assert/strict";
import { test } from "node:test";

import { GraspSDKError, UploadBlockedError, loadPolicy, protectFile } from "../index.js";
import { JPEG, compiledPolicyText, errorAnswer, fakeProtect, flip, standInService } from "./helpers.js";

const photo = () => new File([JPEG], "me.jpg", { type: "image/jpeg", lastModified: 1700000000000 });
const bytes = async (blob) => new Uint8Array(await blob.arrayBuffer());
const policy = loadPolicy(compiledPolicyText());
const blockingPolicy = loadPolicy({
  format: "grasp-guard-policy", version: 1,
  sites: [{ ...JSON.parse(compiledPolicyText()).sites[0], name: "strict", on_failure: "block" }],
});

test("a protected File keeps its name, type and date; the token goes to the service", async () => {
  const service = await standInService((r) => (r.headers.authorization === "Bearer tok"
    ? { headers: { "Content-Type": "image/jpeg", "X-Grasp-Report": '{"protected":true,"faces":2}' }, body: flip(r.body) }
    : errorAnswer(401, "unauthorized", "a valid bearer token is required")));
  try {
    const out = await protectFile(photo(), { service: service.url, token: "tok", preset: "fast" });
    assert.equal(out.protected, true);
    assert.ok(out.file instanceof File);
    assert.deepEqual([out.file.name, out.file.type, out.file.lastModified], ["me.jpg", "image/jpeg", 1700000000000]);
    assert.deepEqual(await bytes(out.file), flip(JPEG));
    assert.deepEqual(out.report, { protected: true, faces: 2 });
    assert.equal(service.requests[0].url.search, "?preset=fast");

    const refused = await protectFile(photo(), { service: service.url, token: "wrong" });
    assert.equal(refused.protected, false);
    assert.match(refused.reason, /unauthorized \(401\)/);
  } finally {
    await service.close();
  }
});

test("a policy site gives the options and the preset may replace its own", async () => {
  const protect = fakeProtect();
  const out = await protectFile(photo(), { protect, policy, site: "instagram", preset: "strong" });
  assert.equal(out.protected, true);
  assert.deepEqual(protect.calls[0].options.toParams(),
    { preset: "strong", site: "instagram", site_jpeg_quality: "70", site_max_side: "1080" });
  await assert.rejects(protectFile(photo(), { protect, policy, site: "myspace" }), /no such site/);
});

test("on_failure pass: the original with the reason and the error", async () => {
  const service = await standInService(() => errorAnswer(400, "invalid_image", "cannot decode"));
  try {
    const file = photo();
    const out = await protectFile(file, { service: service.url, policy, site: "instagram" });
    assert.equal(out.file, file);
    assert.equal(out.protected, false);
    assert.match(out.reason, /not protected, the original is kept: invalid_image \(400\): cannot decode/);
    assert.equal(out.error.kind, "invalid_image");
  } finally {
    await service.close();
  }
});

test("on_failure block: UploadBlockedError, from the site or given", async () => {
  const down = fakeProtect("fail");
  await assert.rejects(protectFile(photo(), { protect: down, policy: blockingPolicy, site: "strict" }),
    (e) => e instanceof UploadBlockedError && e.site === "strict" && e.cause.message === "service down");
  await assert.rejects(protectFile(photo(), { protect: down, onFailure: "block" }), UploadBlockedError);
});

test("an answer that breaks the size contract is a failure", async () => {
  const out = await protectFile(photo(), { protect: fakeProtect("grow"), sizeMode: "exact" });
  assert.equal(out.protected, false);
  assert.match(out.reason, /size_mode=exact but 631 → 633 bytes/);
});

test("no face, not an image, a truncated image: the original, with the reason", async () => {
  const same = await protectFile(photo(), { protect: fakeProtect("same") });
  assert.deepEqual([same.protected, same.reason], [false, "unchanged: no face found"]);
  const protect = fakeProtect();
  const text = await protectFile(new File(["hello"], "a.txt", { type: "text/plain" }), { protect });
  assert.equal(text.reason, "not an image (by its bytes)");
  const piece = await protectFile(new File([JPEG.subarray(0, 300)], "a.jpg"), { protect });
  assert.deepEqual([piece.reason, piece.error?.message], ["an incomplete image/jpeg", "an incomplete image/jpeg"]);
  assert.equal(text.error, null);
  assert.equal(protect.calls.length, 0);
});

test("neither a service nor a protect function is a TypeError", async () => {
  await assert.rejects(protectFile(photo(), {}), TypeError);
});

test("past max_bytes only a file's first bytes are read: a video goes as it is, a photo under on_failure", async () => {
  const site = blockingPolicy.sites[0];
  const huge = (head, type) => ({
    size: site.maxBytes + 1, name: "big", type,
    slice: (start, end) => new Blob([head.subarray(start, end)]),
    arrayBuffer: () => assert.fail("read whole"),
  });
  const video = huge(new Uint8Array(300), "video/mp4");
  const clip = await protectFile(video, { policy: blockingPolicy, site: "strict", protect: fakeProtect() });
  assert.deepEqual([clip.file, clip.reason], [video, "not an image (by its bytes)"]);
  const protect = fakeProtect();
  await assert.rejects(protectFile(huge(JPEG, "image/jpeg"), { policy: blockingPolicy, site: "strict", protect }),
    (e) => e instanceof UploadBlockedError && /exceeds max_bytes/.test(e.cause.message));
  const passed = await protectFile(huge(JPEG, "image/jpeg"),
    { policy: blockingPolicy, site: "strict", onFailure: "pass", protect });
  assert.match(passed.reason, /exceeds max_bytes/);
  assert.ok(passed.error instanceof GraspSDKError && /exceeds max_bytes/.test(passed.error.message));
  const piece = new File([JPEG.subarray(0, 300)], "a.jpg");
  await assert.rejects(protectFile(piece, { policy: blockingPolicy, site: "strict", protect }),
    (e) => e instanceof UploadBlockedError && e.cause.message === "an incomplete image/jpeg");
  assert.equal(protect.calls.length, 0);
});

test("a file that cannot be read comes back as it is", async () => {
  class Unreadable extends File {
    arrayBuffer() { return Promise.reject(new Error("The requested file could not be read")); }
    slice() { return this; }
  }
  const gone = new Unreadable([JPEG], "me.jpg", { type: "image/jpeg" });
  const out = await protectFile(gone, { policy: blockingPolicy, site: "strict", protect: fakeProtect() });
  assert.deepEqual([out.file, out.protected, out.error], [gone, false, null]);
  assert.match(out.reason, /could not be read/);
});
