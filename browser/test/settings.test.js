import assert from "node:assert/strict";
import { test } from "node:test";

import { readSettings, setSiteEnabled } from "../lib/settings.js";

/** chrome.storage.local as it behaves: every call a round trip. */
class SlowStorage {
  data = {};
  async get(keys) {
    await new Promise((r) => setTimeout(r, 5));
    return Object.fromEntries(keys.filter((k) => k in this.data).map((k) => [k, structuredClone(this.data[k])]));
  }
  async set(items) { await new Promise((r) => setTimeout(r, 5)); Object.assign(this.data, structuredClone(items)); }
}

test("two sites switched off at once are both off", async () => {
  const storage = new SlowStorage();
  await Promise.all([setSiteEnabled("x", false, storage), setSiteEnabled("instagram", false, storage)]);
  assert.deepEqual((await readSettings(storage)).disabledSites.sort(), ["instagram", "x"]);
});

test("a service left blank in the popup is the default one, not the extension's own origin", async () => {
  const storage = new SlowStorage();
  await storage.set({ service: "", token: "t" });
  const settings = await readSettings(storage);
  assert.ok(settings.service.startsWith("http"), settings.service);
  assert.equal(settings.token, "t");
});
