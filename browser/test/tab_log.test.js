import assert from "node:assert/strict";
import { test } from "node:test";

import { TabLog } from "../lib/tab_log.js";

/** chrome.storage.session as it behaves: every call a round trip. */
class SlowStorage {
  data = {};
  async get(key) { await new Promise((r) => setTimeout(r, 5)); return { [key]: structuredClone(this.data[key]) }; }
  async set(items) { await new Promise((r) => setTimeout(r, 5)); Object.assign(this.data, structuredClone(items)); }
  async remove(key) { await new Promise((r) => setTimeout(r, 5)); delete this.data[key]; }
}

test("the photos of one choice, protected at once, are all remembered", async () => {
  const log = new TabLog(new SlowStorage());
  await Promise.all(["aaa", "bbb", "ccc"].map((digest) => log.addProtected(7, digest)));
  for (const digest of ["aaa", "bbb", "ccc"]) assert.equal(await log.wasProtected(7, digest), true, digest);
});

test("a closed tab's entry is gone, even with an update of it still in flight", async () => {
  const storage = new SlowStorage();
  const log = new TabLog(storage);
  const update = log.addNotice(7, { level: "info", text: "protected 1 photo(s)" });
  await log.forget(7);  // the tab closed while the notice was being written
  await update;
  assert.deepEqual(Object.keys(storage.data), []);
});

test("every photo of an album chosen at once is remembered until it is uploaded", async () => {
  const storage = { data: {}, async get(k) { return { [k]: structuredClone(this.data[k]) }; },
    async set(items) { Object.assign(this.data, structuredClone(items)); } };
  const log = new TabLog(storage);
  const album = Array.from({ length: 300 }, (_, i) => `photo-${i}`);
  await Promise.all(album.map((digest) => log.addProtected(7, digest)));
  for (const digest of album) assert.equal(await log.wasProtected(7, digest), true, digest);
});
