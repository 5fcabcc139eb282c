import assert from "node:assert/strict";
import { test } from "node:test";

import { TabLog } from "../lib/tab_log.js";

/** chrome.storage.session as it behaves: every call a round trip. */
class SlowStorage {
  data = {};
  async get(key) { await new Promise((r) => setTimeout(r, 5)); return { [key]: structuredClone(this.data[key]) }; }
  async set(items) { await new Promise((r) => setTimeout(r, 5)); Object.assign(this.data, structuredClone(items)); }
}

test("the photos of one choice, protected at once, are all remembered", async () => {
  const log = new TabLog(new SlowStorage());
  await Promise.all(["aaa", "bbb", "ccc"].map((digest) => log.addProtected(7, digest)));
  for (const digest of ["aaa", "bbb", "ccc"]) assert.equal(await log.wasProtected(7, digest), true, digest);
});
