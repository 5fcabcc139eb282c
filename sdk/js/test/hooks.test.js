// The request-level hooks: wrapFetch, patchXMLHttpRequest, protectRequestBody and
// protectFormData, on every body kind a page sends, with on_failure pass and block.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import {
  UploadBlockedError, loadPolicy, patchXMLHttpRequest, protectFormData, protectRequestBody, wrapFetch,
} from "../index.js";
import { toBase64 } from "../src/bytes.js";
import { absoluteUrl } from "../src/request.js";
import { JPEG, compiledPolicyText, fakeProtect, flip } from "./helpers.js";

const shipped = JSON.parse(compiledPolicyText());
const policy = loadPolicy({
  ...shipped,
  sites: [...shipped.sites, { ...shipped.sites.find((s) => s.name === "generic-multipart"),
    name: "strict", enabled: true, hosts: ["strict.example"], on_failure: "block" }],
});
const bytes = async (blob) => new Uint8Array(await blob.arrayBuffer());
const photo = () => new File([JPEG], "me.jpg", { type: "image/jpeg", lastModified: 42 });
const MASTODON = "https://social.example/api/v2/media";
const INSTAGRAM = "https://i.instagram.com/rupload_igphoto/fb_uploader_1";

/** A fetch that records its calls and answers 200. */
function recordingFetch() {
  const calls = [];
  const fetchFn = async (input, init) => {
    calls.push({ input, init });
    return new Response("ok");
  };
  fetchFn.calls = calls;
  return fetchFn;
}

test("wrapFetch: a FormData upload goes out with its photo replaced, everything else kept", async () => {
  const protect = fakeProtect();
  const outcomes = [];
  const fetchFn = recordingFetch();
  const form = new FormData();
  form.append("description", "me");
  form.append("file", photo());
  await wrapFetch(fetchFn, { policy, protect, onOutcome: (o) => outcomes.push(o) })(MASTODON, { method: "POST", body: form });
  const sent = fetchFn.calls[0].init.body;
  assert.deepEqual([...sent.keys()], ["description", "file"]);
  assert.equal(sent.get("description"), "me");
  const file = sent.get("file");
  assert.deepEqual([file.name, file.type, file.lastModified], ["me.jpg", "image/jpeg", 42]);
  assert.deepEqual(await bytes(file), flip(JPEG));
  assert.deepEqual(await bytes(form.get("file")), JPEG); // the page's own FormData untouched
  assert.equal(outcomes.length, 1);
  assert.deepEqual([outcomes[0].site, outcomes[0].changed, outcomes[0].reason], ["mastodon", true, "protected 1 of 1 image(s)"]);
  assert.equal(protect.calls[0].options.site, "mastodon");
});

test("wrapFetch: requests no site matches go through untouched and unread", async () => {
  const protect = fakeProtect();
  const fetchFn = recordingFetch();
  const init = { method: "POST", body: new ReadableStream() };
  await wrapFetch(fetchFn, { policy, protect })("https://elsewhere.example/upload", init);
  assert.equal(fetchFn.calls[0].init, init);
  assert.equal(init.body.locked, false);
  assert.equal(protect.calls.length, 0);
});

test("wrapFetch: a raw body's length header follows the protected bytes", async () => {
  const fetchFn = recordingFetch();
  const init = { method: "POST", headers: { "X-Entity-Length": String(JPEG.length), "Content-Type": "image/jpeg" }, body: JPEG };
  await wrapFetch(fetchFn, { policy, protect: fakeProtect("grow") })(INSTAGRAM, init);
  const sent = fetchFn.calls[0].init;
  assert.deepEqual(sent.body, new Uint8Array([...JPEG, 1, 2]));
  assert.deepEqual(sent.headers, [["X-Entity-Length", String(JPEG.length + 2)], ["Content-Type", "image/jpeg"]]);
});

test("wrapFetch: a Request is read from a copy and sent as a new Request", async () => {
  const fetchFn = recordingFetch();
  const request = new Request(INSTAGRAM, { method: "POST", body: JPEG, headers: { "Content-Type": "image/jpeg" } });
  await wrapFetch(fetchFn, { policy, protect: fakeProtect() })(request);
  const sent = fetchFn.calls[0].input;
  assert.ok(sent instanceof Request);
  assert.equal(sent.url, INSTAGRAM);
  assert.deepEqual(await bytes(sent), flip(JPEG));
});

test("wrapFetch: on_failure block rejects and sends nothing; pass sends the original", async () => {
  const fetchFn = recordingFetch();
  const outcomes = [];
  const guarded = wrapFetch(fetchFn, { policy, protect: fakeProtect("fail"), onOutcome: (o) => outcomes.push(o) });
  const form = new FormData();
  form.append("file", photo());
  await assert.rejects(guarded("https://strict.example/up", { method: "POST", body: form }),
    (e) => e instanceof UploadBlockedError && e.site === "strict" && /service down/.test(e.message));
  assert.equal(fetchFn.calls.length, 0);
  assert.deepEqual([outcomes[0].blocked, outcomes[0].site], [true, "strict"]);

  const init = { method: "POST", body: form };
  await guarded(MASTODON, init);
  assert.equal(fetchFn.calls[0].init, init);
  assert.equal(outcomes[1].blocked, false);
  assert.match(outcomes[1].reason, /^sending the original upload: site 'mastodon': multipart part 'file': Error: service down/);
});

test("protectRequestBody: URLSearchParams, JSON strings and Blobs come back as they went in", async () => {
  const protect = fakeProtect();
  const b64 = toBase64(JPEG);
  const form = await protectRequestBody("https://upload.x.com/i/media/upload.json",
    { method: "POST", body: new URLSearchParams({ command: "APPEND", media_data: b64 }) }, { policy, protect });
  assert.ok(form.init.body instanceof URLSearchParams);
  assert.deepEqual([...form.init.body], [["command", "APPEND"], ["media_data", toBase64(flip(JPEG))]]);
  assert.equal(form.init.headers.length, 0); // the implied Content-Type is not added

  const json = await protectRequestBody("https://discord.com/api/v9/users/@me",
    { method: "PATCH", headers: [["Content-Type", "application/json"]], body: JSON.stringify({ avatar: `data:image/jpeg;base64,${b64}` }) },
    { policy, protect });
  assert.equal(json.init.body, JSON.stringify({ avatar: `data:image/jpeg;base64,${toBase64(flip(JPEG))}` }));

  const blob = await protectRequestBody(INSTAGRAM, { method: "POST", body: new Blob([JPEG], { type: "image/jpeg" }) }, { policy, protect });
  assert.equal(blob.init.body.type, "image/jpeg");
  assert.deepEqual(await bytes(blob.init.body), flip(JPEG));

  const relative = await protectRequestBody("/rupload_igphoto/x", { method: "POST", body: JPEG },
    { policy, protect, baseURL: "https://i.instagram.com/feed" });
  assert.equal(relative.url, "https://i.instagram.com/rupload_igphoto/x");
  assert.equal(relative.changed, true);
});

test("protectRequestBody: a streamed body goes as on_failure says; a checksum header leaves the request alone", async () => {
  const protect = fakeProtect();
  const stream = await protectRequestBody(INSTAGRAM, { method: "POST", body: new ReadableStream() }, { policy, protect });
  assert.deepEqual([stream.site, stream.changed], ["instagram", false]);
  assert.match(stream.reason, /^sending the original upload: .*a streamed body cannot be read before it is sent/);
  assert.ok(stream.error !== null);  // it may hold a photo: the page is told
  await assert.rejects(protectRequestBody("https://strict.example/up", { method: "POST", body: new ReadableStream() },
    { policy, protect }), UploadBlockedError);
  const summed = await protectRequestBody(INSTAGRAM, { method: "POST", body: JPEG, headers: { "Content-MD5": "x" } }, { policy, protect });
  assert.equal(summed.reason, "Content-MD5 header cannot be recomputed by the JavaScript SDK");
  assert.equal(protect.calls.length, 0);
});

test("protectFormData: the site's fields, base64 text entries, no image at all", async () => {
  const protect = fakeProtect();
  const x = policy.get("x");
  const form = new FormData();
  form.append("media_data", toBase64(JPEG));
  form.append("other", photo());
  const out = await protectFormData(form, { site: x, protect });
  assert.equal(out.reason, "protected 1 of 1 image(s)");
  assert.equal(out.formData.get("media_data"), toBase64(flip(JPEG)));
  assert.deepEqual(await bytes(out.formData.get("other")), JPEG);
  const none = await protectFormData(new FormData(), { site: x, protect });
  assert.equal(none.reason, "empty body");
  const instagram = await protectFormData(form, { site: policy.get("instagram"), protect });
  assert.equal(instagram.reason, "format multipart is not enabled for site 'instagram'");
});

test("protectFormData: on a block site, a photo outside the policy's fields stops the form", async () => {
  const x = shipped.sites.find((s) => s.name === "x");
  const strict = loadPolicy({ ...shipped, sites: [{ ...x, name: "strict-x", on_failure: "block" }] });
  const form = new FormData();
  form.append("media_data", toBase64(JPEG));
  form.append("other", photo());  // not a field the policy protects: it would go as it is
  const protect = fakeProtect();
  await assert.rejects(protectFormData(form, { site: strict.get("strict-x"), protect }),
    (error) => error.onFailure === "block" && /cannot be protected: an image outside/.test(error.message));
  assert.equal(protect.calls.length, 0);
  const alone = new FormData();
  alone.append("media_data", toBase64(JPEG));
  alone.append("caption", "hello");
  const out = await protectFormData(alone, { site: strict.get("strict-x"), protect });
  assert.equal(out.formData.get("media_data"), toBase64(flip(JPEG)));
});

/** Stands in for XMLHttpRequest: records what reaches the network side. */
class FakeXHR extends EventTarget {
  constructor() {
    super();
    this.log = [];
    this.sent = new Promise((resolve) => { this.markSent = resolve; });
  }

  open(method, url, async) { this.log.push(["open", method, url, async]); }

  setRequestHeader(name, value) { this.log.push(["header", name, value]); }

  send(body) {
    this.log.push(["send", body]);
    this.markSent();
  }
}

test("patchXMLHttpRequest: headers held until the protected body goes; others pass at once", async () => {
  class XHR extends FakeXHR {}
  const outcomes = [];
  const restore = patchXMLHttpRequest(XHR, { policy, protect: fakeProtect("grow"), onOutcome: (o) => outcomes.push(o) });
  const xhr = new XHR();
  xhr.open("POST", INSTAGRAM);
  xhr.setRequestHeader("X-Entity-Length", String(JPEG.length));
  xhr.send(JPEG);
  await xhr.sent;
  assert.deepEqual(xhr.log.slice(1), [["header", "X-Entity-Length", String(JPEG.length + 2)], ["send", new Uint8Array([...JPEG, 1, 2])]]);
  assert.equal(outcomes[0].changed, true);

  const other = new XHR();
  other.open("POST", "https://elsewhere.example/");
  other.setRequestHeader("A", "1");
  other.send("x");
  assert.deepEqual(other.log.slice(1), [["header", "A", "1"], ["send", "x"]]);
  restore();
  assert.equal(XHR.prototype.send, FakeXHR.prototype.send);
});

test("patchXMLHttpRequest: block fires error and loadend and sends nothing; sync block throws", async () => {
  class XHR extends FakeXHR {}
  const outcomes = [];
  patchXMLHttpRequest(XHR, { policy, protect: fakeProtect("fail"), onOutcome: (o) => outcomes.push(o) });
  const form = new FormData();
  form.append("file", photo());
  const xhr = new XHR();
  const events = [];
  const done = new Promise((resolve) => xhr.addEventListener("loadend", resolve));
  for (const type of ["readystatechange", "error"]) xhr.addEventListener(type, () => events.push(`${type}@${xhr.readyState}`));
  xhr.open("POST", "https://strict.example/up");
  xhr.send(form);
  await done;
  assert.deepEqual(events, ["readystatechange@4", "error@4"]);  // code waiting on readyState 4 hears it
  assert.equal(xhr.log.length, 1); // open only
  assert.equal(outcomes[0].blocked, true);

  for (const flag of [false, undefined]) {  // open(m, u, undefined) is synchronous too
    const sync = new XHR();
    sync.open("POST", "https://strict.example/up", flag);
    assert.throws(() => sync.send(form), UploadBlockedError);
  }
  const passing = new XHR();
  passing.open("POST", MASTODON, false);
  passing.send(form);
  assert.deepEqual(passing.log.at(-1), ["send", form]);
  assert.match(outcomes.at(-1).reason, /synchronous XMLHttpRequest cannot wait/);
  assert.ok(outcomes.at(-1).error instanceof Error);  // the original went: the page is told
});

test("protectRequestBody: a photo is a photo whatever its label; a piece of a longer file and a URL-pinned checksum are left alone", async () => {
  const protect = fakeProtect();
  for (const type of ["application/x-www-form-urlencoded", "application/json", "multipart/form-data"]) {
    const labelled = await protectRequestBody(INSTAGRAM, { method: "POST", body: JPEG, headers: { "Content-Type": type } }, { policy, protect });
    assert.equal(labelled.changed, true, type);
  }
  const piece = await protectRequestBody(INSTAGRAM,
    { method: "POST", body: JPEG, headers: { "X-Entity-Length": String(JPEG.length + 5000) } }, { policy, protect });
  assert.equal(piece.reason, `X-Entity-Length declares ${JPEG.length + 5000} bytes and the body holds ${JPEG.length} (a piece of a split upload?)`);
  const pinned = await protectRequestBody(`${INSTAGRAM}?X-Amz-Signature=1&x-amz-checksum-crc32=AAAAAA%3D%3D`,
    { method: "POST", body: JPEG }, { policy, protect });
  assert.equal(pinned.reason, "the signed URL pins the body's checksum (x-amz-checksum-crc32)");
  assert.equal(protect.calls.length, 3);
});

test("a relative upload URL resolves against the document's base URL, as fetch resolves it", () => {
  globalThis.document = { baseURI: "https://social.example/app/" };  // <base href="/app/">
  try {
    assert.equal(absoluteUrl("api/v2/media"), "https://social.example/app/api/v2/media");
  } finally {
    delete globalThis.document;
  }
});

test("patchXMLHttpRequest: a request aborted while its photo is protected is never sent", async () => {
  class XHR extends FakeXHR {
    abort() { this.log.push(["abort"]); }
  }
  let release;
  const slow = (data) => new Promise((resolve) => { release = () => resolve({ data, contentType: "image/jpeg", report: {} }); });
  patchXMLHttpRequest(XHR, { policy, protect: slow });
  const xhr = new XHR();
  const events = [];
  for (const type of ["abort", "loadend"]) xhr.addEventListener(type, () => events.push(type));
  xhr.open("POST", INSTAGRAM);
  xhr.send(JPEG);
  await new Promise((resolve) => setTimeout(resolve, 10));
  xhr.abort();
  release();
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(events, ["abort", "loadend"]);
  assert.equal(xhr.readyState, 0);
  assert.throws(() => xhr.send(JPEG), { name: "InvalidStateError" });  // as a browser's would
  assert.ok(!xhr.log.some(([what]) => what === "send"));
});

test("wrapFetch: fetch(request, {body: null}) keeps the Request's photo, and protects it", async () => {
  const fetchFn = recordingFetch();
  const request = new Request(INSTAGRAM, { method: "POST", body: JPEG, headers: { "Content-Type": "image/jpeg" } });
  await wrapFetch(fetchFn, { policy, protect: fakeProtect() })(request, { body: null });
  assert.deepEqual(await bytes(fetchFn.calls[0].input), flip(JPEG));
});

test("wrapFetch: an aborted fetch rejects at once and sends nothing, before or during protection", async () => {
  const fetchFn = async (input, init) => {
    if ((init?.signal ?? input.signal)?.aborted) throw new DOMException("aborted", "AbortError");
    fetchFn.sent += 1;
    return new Response("ok");
  };
  fetchFn.sent = 0;
  let release;
  const slow = async (data) => { await new Promise((resolve) => { release = resolve; }); return { data: flip(data), contentType: "image/jpeg", report: {} }; };
  const guarded = wrapFetch(fetchFn, { policy, protect: slow });
  const before = new AbortController();
  before.abort();
  await assert.rejects(guarded(INSTAGRAM, { method: "POST", body: JPEG, signal: before.signal }), { name: "AbortError" });
  assert.equal(release, undefined);  // the service was never asked
  const during = new AbortController();
  const pending = guarded(INSTAGRAM, { method: "POST", body: JPEG, signal: during.signal });
  await new Promise((resolve) => setTimeout(resolve, 10));
  during.abort();
  await assert.rejects(pending, { name: "AbortError" });
  release();
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(fetchFn.sent, 0);
});

test("patchXMLHttpRequest: a header the browser refuses throws from setRequestHeader, as it would unpatched", () => {
  class XHR extends FakeXHR {}
  patchXMLHttpRequest(XHR, { policy, protect: fakeProtect() });
  const xhr = new XHR();
  xhr.open("POST", MASTODON);
  assert.throws(() => xhr.setRequestHeader("X-File-Name", "été €.jpg"), TypeError);  // not a ByteString
  assert.throws(() => xhr.setRequestHeader("Bad Name", "x"), { name: "SyntaxError" });
  assert.throws(() => xhr.setRequestHeader("X-Note", "a\r\nInjected: 1"), { name: "SyntaxError" });
  xhr.setRequestHeader("X-Note", "  kept  ");
  xhr.send("no photo");
  return xhr.sent.then(() => assert.deepEqual(xhr.log.filter(([kind]) => kind === "header"), [["header", "X-Note", "kept"]]));
});

test("wrapFetch: a long-lived signal keeps no listener per upload; signal: null drops the Request's", async () => {
  const controller = new AbortController();
  let listeners = 0;
  const { addEventListener: add, removeEventListener: remove } = controller.signal;
  controller.signal.addEventListener = function (...args) { listeners += 1; return add.apply(this, args); };
  controller.signal.removeEventListener = function (...args) { listeners -= 1; return remove.apply(this, args); };
  const fetchFn = recordingFetch();
  const guarded = wrapFetch(fetchFn, { policy, protect: fakeProtect() });
  for (let i = 0; i < 5; i += 1) await guarded(INSTAGRAM, { method: "POST", body: JPEG, signal: controller.signal });
  assert.equal(listeners, 0);
  const aborted = new AbortController();
  aborted.abort();
  const request = new Request(INSTAGRAM, { method: "POST", body: JPEG, signal: aborted.signal });
  await guarded(request, { signal: null });  // fetch would send it: it goes protected
  assert.deepEqual(await bytes(fetchFn.calls.at(-1).input), flip(JPEG));
});

test("protectFormData: a form carrying a checksum of its file is left alone, as its bytes would be", async () => {
  const form = new FormData();
  form.append("x-amz-checksum-sha256", "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=");
  form.append("file", photo());
  const protect = fakeProtect();
  const out = await protectRequestBody(MASTODON, { method: "POST", body: form }, { policy, protect });
  assert.deepEqual([out.changed, out.reason], [false, "the form carries a checksum of its file ('x-amz-checksum-sha256')"]);
  assert.equal(protect.calls.length, 0);
});

test("protectRequestBody: a FormData stating its photo's digest in a field, a file name or a header is left alone, as its bytes would be", async () => {
  const sha256 = createHash("sha256").update(JPEG).digest("hex");
  const md5 = createHash("md5").update(JPEG).digest("base64");
  const inField = new FormData();
  inField.append("sha256", sha256);
  inField.append("file", photo());
  const inName = new FormData();
  inName.append("file", new File([JPEG], `${sha256}.jpg`, { type: "image/jpeg" }));
  const bare = new FormData();
  bare.append("file", photo());
  const protect = fakeProtect();
  for (const [body, headers, algorithm] of [[inField, {}, "sha256"], [inName, {}, "sha256"], [bare, { "X-File-MD5": md5 }, "md5"]]) {
    const out = await protectRequestBody(MASTODON, { method: "POST", body, headers }, { policy, protect });
    assert.deepEqual([out.changed, out.reason],
      [false, `the upload states the ${algorithm} digest of multipart part 'file' beside it, which cannot be recomputed`]);
    await assert.rejects(protectRequestBody("https://strict.example/up", { method: "POST", body, headers }, { policy, protect }),
      (error) => error instanceof UploadBlockedError && /cannot be protected: the upload states/.test(error.message));
  }
  assert.equal(protect.calls.length, 0);
});

test("protectRequestBody: a FormData file holding a photo's base64 is protected and written back as base64, as its multipart part is", async () => {
  const dataUrl = (image) => `data:image/jpeg;base64,${toBase64(image)}`;
  const form = new FormData();
  form.append("file", new Blob([dataUrl(JPEG)], { type: "text/plain" }), "image.txt");
  for (const url of [MASTODON, "https://strict.example/up"]) {
    const out = await protectRequestBody(url, { method: "POST", body: form }, { policy, protect: fakeProtect() });
    assert.deepEqual([out.changed, out.reason], [true, "protected 1 of 1 image(s)"]);
    const sent = out.init.body.get("file");
    assert.deepEqual([sent.name, sent.type, await sent.text()], ["image.txt", "text/plain", dataUrl(flip(JPEG))]);
  }
});
