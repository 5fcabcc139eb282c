import assert from "node:assert/strict";
import { test } from "node:test";

import { loadPolicy } from "../sdk/index.js";
import { PageSites, pageHost, pageUrl } from "../lib/sites.js";

const site = (name, hosts, extra = {}) => ({
  name, enabled: true, hosts, paths: ["/upload/*"], methods: ["POST"], formats: ["multipart"],
  fields: [], preset: "fast", size_mode: "any", on_no_face: "skip", on_failure: "pass",
  site_pipeline: null, max_bytes: 1000, length_headers: [], signed: false, ...extra,
});
const POLICY = loadPolicy({
  format: "grasp-guard-policy", version: 1, sites: [
    site("photos", ["upload.photos.example"]),
    site("any-instance", ["*", "social.example"]),
    site("off", ["off.example"], { enabled: false }),
    site("second", ["upload.photos.example", "*.second.example"], { on_failure: "block" }),
  ],
});
const PAGES = { photos: ["www.photos.example"], unknown: ["x.example"] };

test("a page works for the sites whose hosts or pages match it, in policy order", () => {
  const pages = new PageSites(POLICY, PAGES);
  const names = (url, disabled) => pages.sitesFor(url, disabled).map((s) => s.name);
  assert.deepEqual(names("https://www.photos.example/new"), ["photos"]);
  assert.deepEqual(names("https://upload.photos.example/"), ["photos", "second"]);
  assert.deepEqual(names("https://a.second.example:8443/x"), ["second"]);
  assert.deepEqual(names("https://SOCIAL.example/"), ["any-instance"]);
  assert.equal(pages.siteFor("https://upload.photos.example/").name, "photos");
  assert.equal(pages.siteFor("https://upload.photos.example/", ["photos"]).name, "second");
});

test("no page matches an any-host pattern, a disabled site, or nothing at all", () => {
  const pages = new PageSites(POLICY, PAGES);
  for (const url of ["https://elsewhere.example/", "https://off.example/", "about:blank", "not a url", ""]) {
    assert.deepEqual(pages.sitesFor(url), [], url);
    assert.equal(pages.siteFor(url), null);
  }
});

test("the page's policy holds its sites only, so its uploads match nothing else", () => {
  const pages = new PageSites(POLICY, PAGES);
  const policy = pages.policyFor("https://www.photos.example/");
  assert.deepEqual(policy.sites.map((s) => s.name), ["photos"]);
  assert.equal(policy.match("POST", "https://upload.photos.example/upload/1").name, "photos");
  assert.equal(policy.match("POST", "https://social.example/upload/1"), null);
  assert.deepEqual(pages.policyFor("https://www.photos.example/", ["photos"]).sites, []);
});

test("pageHost is the policy's host: lower case, no port, IPv6 unbracketed", () => {
  assert.equal(pageHost("https://WWW.Photos.example:8080/a?b"), "www.photos.example");
  assert.equal(pageHost("http://[::1]:9/"), "::1");
  assert.equal(pageHost("garbage"), "");
});

test("a frame the page writes itself (about:blank, srcdoc, a Blob) works for its origin's sites", () => {
  const pages = new PageSites(POLICY, PAGES);
  const origin = "https://www.photos.example";
  for (const url of ["about:blank", "about:srcdoc", "ABOUT:blank#x", `blob:${origin}/5f0c`, "data:text/html,<p>"]) {
    assert.equal(pages.siteFor(pageUrl(url, origin)).name, "photos", url);
    // an opaque origin (a data: URL, a sandboxed frame) or none: no site
    for (const opaque of ["null", undefined]) assert.equal(pages.siteFor(pageUrl(url, opaque)), null, url);
  }
  // a document with a host of its own: its URL decides, never the origin given
  assert.equal(pageUrl("https://elsewhere.example/x", origin), "https://elsewhere.example/x");
});
