import assert from "node:assert/strict";
import { test } from "node:test";

import { Policy, loadPolicy } from "../sdk/index.js";
import { declinePhotoBeacons } from "../lib/beacon.js";

const POLICY = loadPolicy({
  format: "grasp-guard-policy", version: 1, sites: [{
    name: "photos", enabled: true, hosts: ["upload.photos.example"], paths: ["/upload/*"], methods: ["POST"],
    formats: ["multipart", "raw"], fields: [], preset: "fast", size_mode: "any", on_no_face: "skip",
    on_failure: "pass", site_pipeline: null, max_bytes: 1000, length_headers: [], signed: false,
  }],
});
const JPEG = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01,
  0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0xff, 0xd9]);

function stage(policyOf = () => POLICY) {
  const sent = [];
  class FakeNavigator {
    sendBeacon(url, data) { sent.push([url, data]); return true; }
  }
  const win = { Navigator: FakeNavigator, Blob, FormData, location: { href: "https://www.photos.example/feed" } };
  declinePhotoBeacons(win, policyOf);
  return { beacon: (url, data) => new FakeNavigator().sendBeacon(url, data), sent };
}

test("a beacon that may carry a photo to an upload the policy matches is declined, so the page falls back", () => {
  const { beacon, sent } = stage();
  const form = new FormData();
  form.append("photo", new Blob([JPEG], { type: "image/jpeg" }), "me.jpg");
  const base64 = `{"photo": "${Buffer.from(JPEG).toString("base64")}"}`;
  for (const data of [new Blob([JPEG]), form, JPEG, JPEG.buffer, new DataView(JPEG.buffer), base64]) {
    assert.equal(beacon("https://upload.photos.example/upload/1", data), false);
  }
  assert.equal(beacon("/upload/2", JPEG), true);  // relative to the page: its own host, sent
  assert.deepEqual(sent.map(([url]) => url), ["/upload/2"]);
});

test("other beacons go as they are: elsewhere, another path, or nothing that is a photo", () => {
  const { beacon, sent } = stage();
  const form = new FormData();
  form.append("event", "click");
  const cases = [["https://stats.example/upload/1", new Blob([JPEG])], ["https://upload.photos.example/stats", JPEG],
    ["https://upload.photos.example/upload/1", "event=click"], ["https://upload.photos.example/upload/1", form],
    ["https://upload.photos.example/upload/1", undefined], ["not a url at all: %%", JPEG]];
  for (const [url, data] of cases) assert.equal(beacon(url, data), true, url);
  assert.equal(sent.length, cases.length);
});

test("a beacon to a site the user switched off since the page loaded goes as it is", () => {
  let policy = POLICY;
  const { beacon, sent } = stage(() => policy);
  assert.equal(beacon("https://upload.photos.example/upload/1", JPEG), false);
  policy = new Policy([], "every site switched off");
  assert.equal(beacon("https://upload.photos.example/upload/1", JPEG), true);
  assert.equal(sent.length, 1);
});
