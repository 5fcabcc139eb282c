// The byte-level hook (rewriteUpload) on an on_failure: block site: an image it cannot
// rewrite never goes as it is (as tests/sdk/test_hook.py checks of grasp_sdk).

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import {
  RewriteError, UnprotectableUpload, UploadBlockedError, loadPolicy, protectRequestBody, rewriteUpload,
} from "../index.js";
import { concat, fromUtf8, toBase64, utf8 } from "../src/bytes.js";
import { JPEG, compiledPolicyText, fakeProtect, flip } from "./helpers.js";

const shipped = JSON.parse(compiledPolicyText());
const generic = shipped.sites.find((s) => s.name === "generic-multipart");
const policyOf = (fields) => loadPolicy({
  ...shipped,
  sites: [{ ...generic, hosts: ["*"], enabled: true, max_bytes: 100000, formats: ["multipart", "json_base64"], ...fields }],
});
const BLOCK_SITE = policyOf({ name: "strict", on_failure: "block" });
const PASS_SITE = policyOf({ name: "s", on_failure: "pass" });

const multipartWith = (name, data, extra = "") => concat([
  utf8(`--b\r\n${extra}Content-Disposition: form-data; name="${name}"; filename="me.jpg"\r\n` +
    "Content-Type: image/jpeg\r\n\r\n"),
  data,
  utf8("\r\n--b--\r\n"),
]);
const FORM = [["Content-Type", "multipart/form-data; boundary=b"]];

/** Requests carrying the JPEG that the hook cannot rewrite, one per reason. */
function unrewritable() {
  const b64 = toBase64(JPEG);
  const checksum = concat([utf8('--b\r\nContent-Disposition: form-data; name="x-amz-checksum-sha256"\r\n\r\nAAAA\r\n'),
    multipartWith("file", JPEG)]);
  return [
    [{ "Content-Type": "image/jpeg" }, JPEG],  // raw: not enabled
    [{ "Content-Type": "application/json" }, utf8(`{"photo": "${b64}"`)],  // malformed
    [{ "x-amz-content-sha256": createHash("sha256").update(JPEG).digest("hex") }, JPEG],  // signed
    [{ "Content-Type": "application/octet-stream" }, concat([JPEG, new Uint8Array(100000)])],  // too big
    [{ "Content-Type": "text/plain" }, utf8(`photo=${b64.replaceAll("/", "%2F")}`)],  // a body the hook reads no format of
    [FORM, multipartWith("file", JPEG.subarray(0, JPEG.length - 40))],  // a piece of a chunked upload
    [FORM, checksum],  // a form carrying a checksum of its file
    [{ "Content-Type": "application/json" }, utf8(`{"photo": "${toBase64(JPEG, true)}"`)],  // URL-safe, malformed
  ];
}

for (const [i, [headers, body]] of unrewritable().entries()) {
  test(`a block site never lets an image it cannot protect go (case ${i})`, async () => {
    const protect = fakeProtect();
    await assert.rejects(rewriteUpload("POST", "https://h/u", headers, body, BLOCK_SITE, protect), (error) => {
      assert.ok(error instanceof UnprotectableUpload && error instanceof RewriteError);
      assert.equal(error.name, "UnprotectableUpload");
      assert.match(error.message, /^site 'strict': the image this body carries cannot be protected: ./);
      assert.deepEqual([error.site, error.onFailure], ["strict", "block"]);
      return true;
    });
    assert.equal(protect.calls.length, 0);
    const out = await rewriteUpload("POST", "https://h/u", headers, body, PASS_SITE, protect);
    assert.equal(out.changed, false);
    assert.equal(out.body, body);
    assert.equal(protect.calls.length, 0);
  });
}

test("an unprotectable upload says why, as grasp_sdk does", async () => {
  const [raw, , signed, , text, piece] = unrewritable();
  const why = async ([headers, body]) => {
    const error = await rewriteUpload("POST", "https://h/u", headers, body, BLOCK_SITE, fakeProtect()).catch((e) => e);
    return error.message.replace("site 'strict': the image this body carries cannot be protected: ", "");
  };
  assert.equal(await why(raw), "format raw is not enabled for site 'strict'");
  assert.match(await why(signed), /^a signature covers the body \(x-amz-content-sha256: /);
  assert.equal(await why(text), "the hook reads no text/plain body");
  assert.equal(await why([{}, concat([utf8("photo="), JPEG])]), "the hook reads no unlabelled body");
  assert.equal(await why(piece), "multipart part 'file' holds an incomplete image/jpeg (a piece of a chunked upload?)");
  // the pass site's reasons are those of before
  const reason = async ([headers, body]) => (await rewriteUpload("POST", "https://h/u", headers, body, PASS_SITE, fakeProtect())).reason;
  assert.equal(await reason(text), "no image in the body");
  assert.equal(await reason(raw), "format raw is not enabled for site 's'");
  const signedSite = policyOf({ name: "signed", on_failure: "block", signed: true });
  await assert.rejects(rewriteUpload("POST", "https://h/u", FORM, multipartWith("file", JPEG), signedSite, fakeProtect()),
    /cannot be protected: the policy marks this site's uploads as signed/);
  const split = policyOf({ name: "split", on_failure: "block", length_headers: ["X-Entity-Length"] });
  await assert.rejects(rewriteUpload("POST", "https://h/u", [...FORM, ["X-Entity-Length", "99999"]],
    multipartWith("file", JPEG), split, fakeProtect()), UnprotectableUpload);
});

test("a block site lets what holds no image go", async () => {
  const cases = [
    [BLOCK_SITE, { "Content-Type": "application/json" }, utf8('{"text": "hi"'), "malformed body: "],
    [BLOCK_SITE, { "Content-Type": "text/plain" }, utf8("hello"), "no image in the body"],
    [BLOCK_SITE, {}, new Uint8Array(0), "empty body"],
    [policyOf({ name: "signed", on_failure: "block", signed: true }), {}, new Uint8Array(0), "empty body"],
    [BLOCK_SITE, { "Content-Type": "application/octet-stream" }, new Uint8Array(100001), "body of 100001 bytes exceeds max_bytes 100000"],
    [BLOCK_SITE, { "Content-Type": "image/jpeg" }, concat([Uint8Array.of(0xff, 0xd8, 0xff, 0x00), utf8("not a jpeg")]),
      "format raw is not enabled for site 'strict'"],
    // three lucky bytes make no JPEG: a video past max_bytes with an SOI and no header after it
    [BLOCK_SITE, { "Content-Type": "application/octet-stream" },
      concat([new Uint8Array(50000), Uint8Array.of(0xff, 0xd8, 0xff, 0xe1, 0xff, 0xff, 0, 1, 2, 3), new Uint8Array(50000)]),
      "body of 100010 bytes exceeds max_bytes 100000"],
    [BLOCK_SITE, { "Content-Type": "text/plain" }, utf8('{"session": "kq3Zx/9j/abcdEFGH"}'), "no image in the body"],
  ];
  for (const [policy, headers, body, reason] of cases) {
    const protect = fakeProtect();
    const out = await rewriteUpload("POST", "https://h/u", headers, body, policy, protect);
    assert.equal(out.changed, false);
    assert.equal(out.body, body);
    assert.ok(out.reason.startsWith(reason), out.reason);
    assert.equal(protect.calls.length, 0);
  }
  const elsewhere = await rewriteUpload("GET", "https://h/u", {}, JPEG, BLOCK_SITE, fakeProtect());
  assert.deepEqual([elsewhere.site, elsewhere.reason], [null, "no policy site matches"]);
});

test("protectRequestBody refuses an unprotectable upload to a block site, as any failure", async () => {
  const protect = fakeProtect();
  const [[headers, body]] = unrewritable();
  await assert.rejects(protectRequestBody("https://h/u", { method: "POST", headers, body }, { policy: BLOCK_SITE, protect }),
    (error) => error instanceof UploadBlockedError && error.site === "strict" && error.cause instanceof UnprotectableUpload &&
      /^upload refused \(site 'strict' blocks unprotected photos\): site 'strict': the image this body carries cannot be protected/.test(error.message));
  const passed = await protectRequestBody("https://h/u", { method: "POST", headers, body }, { policy: PASS_SITE, protect });
  assert.deepEqual([passed.changed, passed.error, passed.reason], [false, null, "format raw is not enabled for site 's'"]);
  assert.equal(protect.calls.length, 0);
});

/** FormData uploads carrying the JPEG that cannot be rewritten, one per reason. */
function unrewritableForms() {
  const photo = () => new File([JPEG], "me.jpg", { type: "image/jpeg" });
  const checksum = new FormData();
  checksum.append("x-amz-checksum-sha256", "AAAA");
  checksum.append("file", photo());
  const big = new FormData();
  big.append("file", photo());
  big.append("padding", "x".repeat(100000));
  const piece = new FormData();
  piece.append("file", new File([JPEG.subarray(0, 300)], "me.jpg"));
  const signed = new FormData();
  signed.append("file", photo());
  return [
    [{}, checksum],
    [{}, big],
    [{}, piece],
    [{ "x-amz-content-sha256": "0".repeat(64) }, signed],
  ];
}

for (const [index, [headers, body]] of unrewritableForms().entries()) {
  test(`a FormData upload to a block site never lets an image it cannot protect go (case ${index})`, async () => {
    const protect = fakeProtect();
    await assert.rejects(protectRequestBody("https://h/u", { method: "POST", headers, body }, { policy: BLOCK_SITE, protect }),
      (e) => e instanceof UploadBlockedError && e.cause instanceof UnprotectableUpload &&
        /the image this form carries cannot be protected/.test(e.cause.message));
    const passed = await protectRequestBody("https://h/u", { method: "POST", headers, body }, { policy: PASS_SITE, protect });
    assert.equal(passed.changed, false);
    assert.equal(protect.calls.length, 0);
  });
}

test("a FormData upload to a block site without an image goes as it is", async () => {
  const form = new FormData();
  form.append("x-amz-checksum-sha256", "AAAA");
  form.append("note", "hello");
  const out = await protectRequestBody("https://h/u", { method: "POST", body: form }, { policy: BLOCK_SITE, protect: fakeProtect() });
  assert.equal(out.changed, false);
  // too big to rewrite, and "/9j/" by chance in a field is no JPEG's base64
  const big = new FormData();
  big.append("session", "kq3Zx/9j/abcdEFGH");
  big.append("padding", "x".repeat(100000));
  const untouched = await protectRequestBody("https://h/u", { method: "POST", body: big }, { policy: BLOCK_SITE, protect: fakeProtect() });
  assert.equal(untouched.changed, false);
});

test("a content-encoded body on a block site is inflated to look, as grasp_sdk does", async () => {
  const gzip = async (bytes) => new Uint8Array(await new Response(
    new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer());
  const post = (body, encoding) => rewriteUpload("POST", "https://h/u",
    [["Content-Type", "image/jpeg"], ["Content-Encoding", encoding]], body, BLOCK_SITE, fakeProtect());
  await assert.rejects(post(await gzip(JPEG), "gzip"), UnprotectableUpload);
  const text = await gzip(utf8("hello ".repeat(1000)));
  assert.equal((await post(text, "gzip")).changed, false);
  await assert.rejects(post(text.subarray(0, text.length - 9), "gzip"), UnprotectableUpload);  // cut short
  await assert.rejects(post(utf8("hello"), "br"), UnprotectableUpload);  // cannot tell: doubt refuses
});

test("every Content-Encoding field and the Transfer-Encoding codings but chunked say how the body is sent, as grasp_sdk reads them", async () => {
  const plain = utf8(JSON.stringify({ photo: toBase64(JPEG) }));
  const gzipped = new Uint8Array(await new Response(
    new Blob([plain]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer());
  const json = ["Content-Type", "application/json"];
  const compressed = [
    [["Transfer-Encoding", "gzip, chunked"]],
    [["Content-Encoding", "identity"], ["Content-Encoding", "gzip"]],
  ];
  for (const codings of compressed) {
    await assert.rejects(rewriteUpload("POST", "https://h/u", [json, ...codings], gzipped, BLOCK_SITE, fakeProtect()),
      (e) => e instanceof UnprotectableUpload && /: body is content-encoded \(gzip\)$/.test(e.message));
    const passed = await rewriteUpload("POST", "https://h/u", [json, ...codings], gzipped, PASS_SITE, fakeProtect());
    assert.deepEqual([passed.changed, passed.reason], [false, "body is content-encoded (gzip)"]);
  }
  const chunked = await rewriteUpload("POST", "https://h/u", [json, ["Transfer-Encoding", "chunked"]], plain, BLOCK_SITE, fakeProtect());
  assert.equal(chunked.changed, true);  // chunked alone is how it travels, not a coding of the body
});

test("a signed FormData whose Blob holds a data URL of a photo is refused on a block site, as its bytes would be", async () => {
  const form = new FormData();
  form.append("payload", new Blob([utf8(`data:image/jpeg;base64,${toBase64(JPEG)}`)]));
  const headers = { "x-amz-content-sha256": "0".repeat(64) };
  await assert.rejects(protectRequestBody("https://h/u", { method: "POST", headers, body: form }, { policy: BLOCK_SITE, protect: fakeProtect() }),
    (e) => e instanceof UploadBlockedError && e.cause instanceof UnprotectableUpload);
});

test("a block site refuses a photo where its policy does not look, as grasp_sdk does", async () => {
  const strict = policyOf({ name: "s", on_failure: "block", formats: ["json_base64"], fields: ["avatar"] });
  const json = [["Content-Type", "application/json"]];
  const body = utf8(JSON.stringify({ bio: `<img src="data:image/jpeg;base64,${toBase64(JPEG)}">` }));
  await assert.rejects(rewriteUpload("POST", "https://h/u", json, body, strict, fakeProtect()),
    (e) => e instanceof UnprotectableUpload && /: not in a field or format the site's policy protects$/.test(e.message));
  const text = utf8(JSON.stringify({ bio: "no photo here" }));
  const out = await rewriteUpload("POST", "https://h/u", json, text, strict, fakeProtect());
  assert.deepEqual([out.changed, out.reason], [false, "no image in the body"]);
  // a file in a form field the site does not name
  const fields = policyOf({ name: "fields", on_failure: "block", fields: ["avatar"] });
  await assert.rejects(rewriteUpload("POST", "https://h/u", FORM, multipartWith("other", JPEG), fields, fakeProtect()),
    /not in a field or format the site's policy protects/);
  const form = new FormData();
  form.append("other", new File([JPEG], "me.jpg", { type: "image/jpeg" }));
  await assert.rejects(protectRequestBody("https://h/u", { method: "POST", body: form }, { policy: fields, protect: fakeProtect() }),
    (e) => e instanceof UploadBlockedError && /not in a field or format the site's policy protects/.test(e.cause.message));
  // on a pass site it goes as it is, for the reason of before
  const pass = policyOf({ name: "p", on_failure: "pass", formats: ["json_base64"], fields: ["avatar"] });
  const passed = await rewriteUpload("POST", "https://h/u", json, body, pass, fakeProtect());
  assert.deepEqual([passed.changed, passed.reason], [false, "no image in the body"]);
});

test("a photo beside the field the policy protects: refused on a block site, as it is on a pass site", async () => {
  const json = [["Content-Type", "application/json"]];
  const b64 = toBase64(JPEG);
  const body = utf8(JSON.stringify({ avatar: b64, preview: b64 }));
  const strict = policyOf({ name: "s", on_failure: "block", formats: ["json_base64"], fields: ["avatar"] });
  await assert.rejects(rewriteUpload("POST", "https://h/u", json, body, strict, fakeProtect()),
    (e) => e instanceof UnprotectableUpload && /outside the fields/.test(e.message));
  const pass = policyOf({ name: "p", on_failure: "pass", formats: ["json_base64"], fields: ["avatar"] });
  const out = await rewriteUpload("POST", "https://h/u", json, body, pass, fakeProtect());
  const sent = JSON.parse(new TextDecoder().decode(out.body));
  assert.ok(out.changed && sent.avatar !== b64 && sent.preview === b64);
});

test("a photo after a compressed stream is seen, as grasp_sdk sees it", async () => {
  const compress = async (bytes, format) => new Uint8Array(await new Response(
    new Blob([bytes]).stream().pipeThrough(new CompressionStream(format))).arrayBuffer());
  const headers = [["Content-Type", "text/plain"], ["Content-Encoding", "deflate"]];
  const body = concat([await compress(utf8("hello ".repeat(100)), "deflate"), JPEG]);
  await assert.rejects(rewriteUpload("POST", "https://h/u", headers, body, BLOCK_SITE, fakeProtect()), UnprotectableUpload);
  const padded = concat([await compress(utf8("hello ".repeat(100)), "gzip"), new Uint8Array(8)]);  // padding after the stream: nothing
  const out = await rewriteUpload("POST", "https://h/u", [["Content-Type", "text/plain"], ["Content-Encoding", "gzip"]],
    padded, BLOCK_SITE, fakeProtect());
  assert.equal(out.changed, false);
});

test("a signed FormData whose Blob past max_bytes holds a data URL of a photo is refused on a block site", async () => {
  const dataUrl = utf8(`data:image/jpeg;base64,${toBase64(JPEG)}`);
  const headers = { "x-amz-content-sha256": "0".repeat(64) };
  // the photo at the start, its base64 starting 5 bytes before the first slice's end (1 MiB),
  // and far into the file
  const prefix = "data:image/jpeg;base64,".length;
  for (const at of [0, (1 << 20) - prefix - 5, 3 << 20]) {
    const padding = new Uint8Array(at + 150000);
    const form = new FormData();
    form.append("payload", new Blob([padding.subarray(0, at), dataUrl, padding.subarray(at)]));
    await assert.rejects(protectRequestBody("https://h/u", { method: "POST", headers, body: form }, { policy: BLOCK_SITE, protect: fakeProtect() }),
      (e) => e instanceof UploadBlockedError && e.cause instanceof UnprotectableUpload, String(at));
  }
  const form = new FormData();
  form.append("payload", new Blob([new Uint8Array(3 << 20)]));  // as big, and no photo: it goes
  const out = await protectRequestBody("https://h/u", { method: "POST", headers, body: form }, { policy: BLOCK_SITE, protect: fakeProtect() });
  assert.equal(out.changed, false);
});

/** Uploads that state the photo's digest beside it, the way sites check one (as in grasp_sdk's tests). */
function statedBeside() {
  const digest = (alg, encoding) => createHash(alg).update(JPEG).digest(encoding);
  const related = concat([
    utf8(`--b\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n${JSON.stringify({ name: "a.jpg", md5Hash: digest("md5", "base64") })}` +
      "\r\n--b\r\nContent-Type: image/jpeg\r\n\r\n"),
    JPEG,
    utf8("\r\n--b--\r\n"),
  ]);
  const form = concat([utf8(`--b\r\nContent-Disposition: form-data; name="file_sha1"\r\n\r\n${digest("sha1", "hex")}\r\n`),
    multipartWith("file", JPEG)]);
  const document = utf8(JSON.stringify({ photo: toBase64(JPEG), checksum: { sha256: digest("sha256", "hex") } }));
  return [
    [{ "Content-Type": "multipart/related; boundary=b" }, related, "md5"],
    [FORM, form, "sha1"],
    [{ "Content-Type": "application/json" }, document, "sha256"],
    [{ ...Object.fromEntries(FORM), "X-Image-CRC32": digest("md5", "hex") }, multipartWith("file", JPEG), "md5"],
    [{ "Content-Type": "image/jpeg", "X-Upload-Meta": `sha512=${digest("sha512", "base64url")}` }, JPEG, "sha512"],
  ];
}

for (const [i, [headers, body, algorithm]] of statedBeside().entries()) {
  test(`a photo whose digest goes beside it is not changed (case ${i}), as grasp_sdk leaves it`, async () => {
    // the site would hold the protected photo to the original's checksum and refuse it
    const raw = policyOf({ name: "s", on_failure: "pass", formats: ["multipart", "json_base64", "raw"] });
    const protect = fakeProtect();
    const out = await rewriteUpload("POST", "https://h/u", headers, body, raw, protect);
    assert.equal(out.changed, false);
    assert.equal(protect.calls.length, 0);
    assert.match(out.reason, new RegExp(`states the (body's )?${algorithm} digest`));
    await assert.rejects(rewriteUpload("POST", "https://h/u", headers, body, BLOCK_SITE, protect),
      new RegExp(`cannot be protected: .*states the (body's )?${algorithm} digest`));
  });
}

test("a digest of something else beside the photo changes nothing", async () => {
  const other = createHash("md5").update("another photo").digest("hex");
  const protect = fakeProtect();
  const out = await rewriteUpload("POST", "https://h/u", [...FORM, ["X-Image-MD5", other]],
    multipartWith("file", JPEG), PASS_SITE, protect);
  assert.equal(out.changed, true);
});

test("tus's Upload-Checksum and Azure's checksums leave the body, and Shared Key locks its length", async () => {
  const sha1 = createHash("sha1").update(JPEG).digest("base64");
  for (const header of [["Upload-Checksum", `sha1 ${sha1}`], ["x-ms-content-crc64", "AAAAAAAAAAA="]]) {
    const out = await rewriteUpload("POST", "https://h/u", [...FORM, header], multipartWith("file", JPEG), PASS_SITE, fakeProtect());
    assert.equal(out.changed, false);
    assert.equal(out.reason, `${header[0]} header cannot be recomputed by the JavaScript SDK`);
  }
  const grows = fakeProtect("grow");
  await assert.rejects(rewriteUpload("PUT", "https://h/u", [...FORM, ["Authorization", "SharedKey acct:c2ln"]],
    multipartWith("file", JPEG), PASS_SITE, grows), /size_mode=exact but/);
  await assert.rejects(rewriteUpload("PUT", "https://h/u", [...FORM, ["Authorization", "SharedKeyLite acct:c2ln"]],
    multipartWith("file", JPEG), PASS_SITE, fakeProtect("grow")), /size_mode=max but/);
});

for (const extra of [0, 1, 2]) {
  test(`base64 that hides whether its writer pads is replaced at its length (+${extra})`, async () => {
    // a photo of 3n bytes written by a padded URL-safe writer shows no "=": the new photo
    // must be 3n bytes too, or a strict decoder of one kind or the other refuses it
    const photo = concat([JPEG, new Uint8Array(extra)]);
    const text = toBase64(photo, true);
    const body = utf8(JSON.stringify({ photo: text }));
    const hidden = photo.length % 3 === 0;
    const protect = fakeProtect();
    const out = await rewriteUpload("POST", "https://h/u", { "Content-Type": "application/json" }, body, PASS_SITE, protect);
    assert.equal(out.changed, true);
    assert.equal(protect.calls[0].options.sizeMode, hidden ? "exact" : PASS_SITE.sites[0].options().sizeMode);
    if (hidden) {
      await assert.rejects(rewriteUpload("POST", "https://h/u", { "Content-Type": "application/json" }, body,
        PASS_SITE, fakeProtect("grow")), /size_mode=exact/);
    }
  });
}

test("a whole-file Content-Range locks the length (a resumable session fixed the total)", async () => {
  const body = multipartWith("file", JPEG);
  const headers = [...FORM, ["Content-Range", `bytes 0-${body.length - 1}/${body.length}`]];
  const protect = fakeProtect();
  const out = await rewriteUpload("PUT", "https://h/u", headers, body, PASS_SITE, protect);
  assert.equal(out.changed, true);
  assert.equal(protect.calls[0].options.sizeMode, "exact");
  await assert.rejects(rewriteUpload("PUT", "https://h/u", headers, body, PASS_SITE, fakeProtect("grow")),
    /size_mode=exact/);
});

test("JSON with a byte-order mark is read whatever its label", async () => {
  const body = concat([new Uint8Array([0xef, 0xbb, 0xbf]), utf8(JSON.stringify({ photo: toBase64(JPEG) }))]);
  for (const contentType of ["application/json", "text/plain"]) {
    const out = await rewriteUpload("POST", "https://h/u", { "Content-Type": contentType }, body, PASS_SITE, fakeProtect());
    assert.equal(out.changed, true, contentType);
    assert.deepEqual([...out.body.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
  }
});

test("JSON written inside JSON, a form value or a multipart part is protected on a block site, as grasp_sdk does", async () => {
  // before, a block site refused these (an image it could not read) and a pass site sent them unprotected
  const protect = fakeProtect();
  const document = JSON.stringify({ caption: "x ☕😀", photo: toBase64(JPEG) });
  const strict = policyOf({ name: "strict", on_failure: "block", formats: ["form_base64", "json_base64", "multipart"] });
  const cases = [
    [{ "Content-Type": "application/json" }, utf8(JSON.stringify({ payload: document })), (out) => JSON.parse(JSON.parse(fromUtf8(out)).payload)],
    [{ "Content-Type": "application/x-www-form-urlencoded" }, utf8(new URLSearchParams({ payload: document }).toString()),
      (out) => JSON.parse(new URLSearchParams(fromUtf8(out)).get("payload"))],
    [FORM, utf8(`--b\r\nContent-Disposition: form-data; name="payload"\r\n\r\n${document}\r\n--b--\r\n`),
      (out) => JSON.parse(fromUtf8(out).split("\r\n")[3])],
  ];
  for (const [headers, body, read] of cases) {
    const out = await rewriteUpload("POST", "https://h/u", headers, body, strict, protect);
    assert.ok(out.changed, out.reason);
    assert.equal(read(out.body).photo, toBase64(flip(JPEG)));
    assert.match(out.images[0].location, /→ json \$\.photo$/);
  }
});

test("a FormData entry that is a JSON document holding photos is protected on a block site, as its multipart part is", async () => {
  // before, a block site refused these and a pass site sent them unprotected
  const document = (photo) => JSON.stringify({ caption: "x ☕😀", photo: toBase64(photo), bytes: Array.from(photo) });
  const form = new FormData();
  form.append("caption", "hi");
  form.append("meta", document(JPEG));
  form.append("file", new File([`\ufeff ${document(JPEG)}`], "meta.json", { type: "application/json", lastModified: 5 }));
  const send = (policy) => protectRequestBody("https://h/u", { method: "POST", body: form }, { policy, protect: fakeProtect() });
  const out = await send(BLOCK_SITE);
  assert.equal(out.reason, "protected 4 of 4 image(s)");
  assert.deepEqual(out.images.map((image) => image.location), ["multipart part 'meta' → json $.photo", "multipart part 'meta' → json $.bytes",
    "multipart part 'file' → json $.photo", "multipart part 'file' → json $.bytes"]);
  const sent = out.init.body;
  assert.deepEqual([sent.get("caption"), sent.get("meta")], ["hi", document(flip(JPEG))]);
  const file = sent.get("file");
  assert.deepEqual([file.name, file.type, file.lastModified], ["meta.json", "application/json", 5]);
  assert.equal(fromUtf8(new Uint8Array(await file.arrayBuffer())), `\ufeff ${document(flip(JPEG))}`);
  // a field name reaches into it: the entry's name considers all its keys, another the inner keys it matches
  for (const [fields, found] of [[["meta"], 2], [["photo"], 2], [["bytes", "file"], 3]]) {
    const done = await send(policyOf({ name: "lenient", on_failure: "pass", fields }));
    assert.equal(done.reason, `protected ${found} of ${found} image(s)`, String(fields));
    // the others go as they are: a block site refuses the form
    await assert.rejects(send(policyOf({ name: "strict", on_failure: "block", fields })), UploadBlockedError);
  }
  await assert.rejects(send(policyOf({ name: "strict", on_failure: "block", fields: ["other"] })), UploadBlockedError);
});
