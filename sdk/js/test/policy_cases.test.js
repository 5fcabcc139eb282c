// The shared policy cases (tests/policy_cases.json) through the JS upload hook, with the
// policy compiled from the shipped YAML: the Python SDK runs the same table
// (tests/sdk/test_policy_cases.py) and must give the same answers.

import assert from "node:assert/strict";
import { test } from "node:test";

import { loadPolicy, rewriteUpload } from "../index.js";
import { fromBase64, toBase64, utf8 } from "../src/bytes.js";
import { CASES, compiledPolicyText, fakeProtect, flip } from "./helpers.js";

const policy = loadPolicy(compiledPolicyText(), { source: "compiled shipped policy" });
const IMAGES = Object.fromEntries(Object.entries(CASES.images).map(([k, v]) => [k, fromBase64(v)]));

/** A case's body, with `images` standing for the table's images (see its `about`). */
function buildBody(body, images) {
  const b64 = toBase64(images.jpeg);
  const values = {
    "{jpeg_b64}": b64,
    "{jpeg_b64_pct}": encodeURIComponent(b64),
    "{jpeg_data_uri}": `data:image/jpeg;base64,${b64}`,
  };
  const text = (template) => utf8(Object.entries(values).reduce((t, [k, v]) => t.replaceAll(k, v), template));
  if ("raw" in body) return images[body.raw];
  if ("text" in body) return text(body.text);
  if ("json" in body) return text(JSON.stringify(body.json));
  const { boundary, parts } = body.multipart;
  const chunks = [];
  for (const part of parts) {
    let disposition = `form-data; name="${part.name}"`;
    if ("filename" in part) disposition += `; filename="${part.filename}"`;
    let head = `--${boundary}\r\nContent-Disposition: ${disposition}\r\n`;
    if ("content_type" in part) head += `Content-Type: ${part.content_type}\r\n`;
    chunks.push(utf8(head + "\r\n"), "image" in part ? images[part.image] : text(part.text), utf8("\r\n"));
  }
  chunks.push(utf8(`--${boundary}--\r\n`));
  return new Uint8Array(chunks.flatMap((c) => [...c]));
}

for (const c of CASES.cases) {
  test(`policy case ${c.id}`, async () => {
    const protect = fakeProtect();
    const body = buildBody(c.body, IMAGES);
    const out = await rewriteUpload(c.method, c.url, c.headers, body, policy, protect);
    const { expect } = c;
    assert.deepEqual([out.site, out.changed, out.reason], [expect.site, expect.changed, expect.reason]);
    if (expect.site !== null) assert.equal(policy.get(expect.site).onFailure, expect.on_failure);
    assert.deepEqual(protect.calls.map((call) => call.options.toParams()), "params" in expect ? [expect.params] : []);
    const flipped = Object.fromEntries(Object.entries(IMAGES).map(([k, v]) => [k, flip(v)]));
    assert.deepEqual(out.body, expect.changed ? buildBody(c.body, flipped) : body);
  });
}

test("the cases cover every enabled site", () => {
  const covered = new Set(CASES.cases.map((c) => c.expect.site));
  for (const site of policy.sites.filter((s) => s.enabled)) assert.ok(covered.has(site.name), site.name);
});
