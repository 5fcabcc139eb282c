// The compiled policy: loaded with errors that say where, matched as policy.py matches.

import assert from "node:assert/strict";
import { test } from "node:test";

import { PolicyError, loadPolicy } from "../index.js";
import { nameMatches, parseHost, parsePath } from "../src/patterns.js";
import { hostAndPath } from "../src/policy.js";
import { compiledPolicyText } from "./helpers.js";

const shipped = JSON.parse(compiledPolicyText());
const site = (fields) => ({ ...shipped.sites.find((s) => s.name === "mastodon"), ...fields });
const doc = (...sites) => ({ format: "grasp-guard-policy", version: 1, sites });

test("the shipped policy loads from JSON text or object, every site kept", () => {
  const policy = loadPolicy(JSON.stringify(shipped));
  assert.deepEqual(policy.sites.map((s) => s.name), shipped.sites.map((s) => s.name));
  assert.equal(policy.get("generic-multipart").enabled, false);
  assert.equal(loadPolicy(shipped).get("x").sizeMode, "exact");
});

test("the first enabled match wins; disabled sites never match", () => {
  const policy = loadPolicy(doc(
    site({ name: "off", enabled: false, hosts: ["a.example"], paths: [] }),
    site({ name: "first", hosts: ["*.example"], paths: [] }),
    site({ name: "second", hosts: ["a.example"], paths: [] }),
  ));
  assert.equal(policy.match("POST", "https://a.example/x").name, "first");
  assert.equal(policy.match("POST", "https://example/x"), null);
  assert.equal(policy.match("POST", "not a url"), null);
});

test("hosts: whole-name globs, any case, IPv6 without brackets", () => {
  assert.ok(parseHost("*.fbcdn.net").matches("scontent-lhr8-1.xx.FBCDN.net"));
  assert.ok(!parseHost("*.fbcdn.net").matches("fbcdn.net"));
  assert.ok(parseHost("up?.example").matches("up1.example"));
  assert.ok(!parseHost("a.example").matches("a-example"));
  assert.deepEqual(hostAndPath("http://[::1]:8080/v6?q"), { host: "::1", path: "/v6" });
  assert.deepEqual(hostAndPath("HTTP://User@Up.Example:99"), { host: "up.example", path: "/" });
  assert.throws(() => parseHost("bad host!"), /not a host name/);
});

test("paths: * within a segment, ** across, ^ regex anchored at the start only", () => {
  assert.ok(parsePath("/a/*/c").matches("/a/b/c"));
  assert.ok(!parsePath("/a/*/c").matches("/a/b/x/c"));
  assert.ok(parsePath("/a/**").matches("/a/b/x/c"));
  assert.ok(parsePath("/a.json").matches("/a.json") && !parsePath("/a.json").matches("/aXjson"));
  assert.ok(parsePath("^/v[0-9]+/up").matches("/v2/upload/more"));
  assert.ok(!parsePath("^/v[0-9]+/up").matches("/x/v2/up"));
  // Python's re.match tries the start only, for every alternative.
  assert.ok(!parsePath("^/a|/b").matches("/x/b"));
  assert.throws(() => parsePath("no/slash"), /must start with/);
  assert.throws(() => parsePath("^(unclosed"), /bad path regex/);
});

test("field names: exact or * wildcards", () => {
  assert.ok(nameMatches("files[3]", ["files[*]"]));
  assert.ok(!nameMatches("files[3]x", ["files[*]"]));
  assert.ok(!nameMatches("media2", ["media"]));
});

test("errors name the source, the site and the field", () => {
  const cases = [
    [{ format: "other" }, /not a compiled policy/],
    [{ ...doc(site({})), version: 2 }, /unsupported version 2/],
    [doc(), /'sites' must be a non-empty list/],
    [doc(site({ on_failure: "maybe" })), /site 'mastodon': field 'on_failure': expected one of pass, block/],
    [doc(site({ hosts: [] })), /field 'hosts': at least one host/],
    [doc(site({ colour: "red" })), /field 'colour': unknown field/],
    [doc({ ...site({}), preset: undefined }), /field 'preset': required/],
    [doc(site({}), site({})), /duplicate site name/],
    [doc(site({ site_pipeline: { jpeg_quality: [90, 10] } })), /jpeg_quality must be/],
    [doc(site({ max_bytes: 0 })), /field 'max_bytes'/],
  ];
  for (const [value, message] of cases) {
    assert.throws(() => loadPolicy(JSON.parse(JSON.stringify(value)), { source: "mine.json" }),
      (e) => e instanceof PolicyError && e.message.startsWith("mine.json") && message.test(e.message), String(message));
  }
  assert.throws(() => loadPolicy("{"), /not valid JSON/);
});

test("a site's options: the harshest JPEG quality, exact size when asked", () => {
  const x = loadPolicy(shipped).get("instagram");
  assert.deepEqual(x.options().toParams(), { site: "instagram", site_jpeg_quality: "70", site_max_side: "1080" });
  assert.equal(x.options({ exactSize: true }).sizeMode, "exact");
});
