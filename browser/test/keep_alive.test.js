import assert from "node:assert/strict";
import { test } from "node:test";

import { keptAlive } from "../lib/keep_alive.js";

const after = (ms, value) => new Promise((resolve) => setTimeout(() => resolve(value), ms));

test("an extension API is called all along a long protection, and not after it", async () => {
  let beats = 0;
  assert.equal(await keptAlive(after(250, "protected"), () => { beats += 1; }, 20), "protected");
  const during = beats;
  assert.ok(during >= 3, `only ${during} beats in 250 ms at one per 20 ms`);
  await after(60);
  assert.equal(beats, during);
});

test("a failure of the work is the caller's; a failed beat is nobody's", async () => {
  const failing = after(50).then(() => { throw new Error("service down"); });
  await assert.rejects(keptAlive(failing, () => { throw new Error("no API"); }, 10), /service down/);
});
