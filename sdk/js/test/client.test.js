// GraspClient against a stand-in service on 127.0.0.1: the contract of POST /v1/protect
// (path, query options, headers, token, report) and the retry rules.

import assert from "node:assert/strict";
import { test } from "node:test";

import { GraspClient, ProtectOptions, ProtectTimeout, ServiceError, ServiceUnavailable } from "../index.js";
import { JPEG, errorAnswer, flip, protectedAnswer, standInService } from "./helpers.js";

test("posts the image raw to /v1/protect with its type, the options and the token", async () => {
  const service = await standInService();
  try {
    const client = new GraspClient(`${service.url}/`, { token: "s3cret" });
    const options = new ProtectOptions({ preset: "strong", sizeMode: "exact", site: "x", siteBlurSigma: 2 });
    const result = await client.protect(JPEG, options);
    const [request] = service.requests;
    assert.equal(request.method, "POST");
    assert.equal(request.url.pathname, "/v1/protect");
    assert.deepEqual(Object.fromEntries(request.url.searchParams),
      { preset: "strong", size_mode: "exact", site: "x", site_blur_sigma: "2.0" });
    assert.equal(request.headers["content-type"], "image/jpeg");
    assert.equal(request.headers.authorization, "Bearer s3cret");
    assert.deepEqual(request.body, JPEG);
    assert.deepEqual(result.data, flip(JPEG));
    assert.equal(result.contentType, "image/jpeg");
    assert.deepEqual(result.report, { protected: true, faces: 1 });
  } finally {
    await service.close();
  }
});

test("default options send no query and no token header", async () => {
  const service = await standInService();
  try {
    await new GraspClient(service.url).protect(JPEG, { onNoFace: "whole" });
    const [request] = service.requests;
    assert.equal(request.url.search, "?on_no_face=whole");
    assert.equal(request.headers.authorization, undefined);
  } finally {
    await service.close();
  }
});

test("429 and 503 are retried after Retry-After; another endpoint is tried first", async () => {
  const busy = await standInService(() => errorAnswer(429, "queue_full", "full", { "Retry-After": "0" }));
  const flaky = await standInService((request, n) => (n === 1 ? errorAnswer(503, "unavailable", "warming up") : protectedAnswer(request)));
  try {
    const client = new GraspClient([busy.url, flaky.url], { backoffBaseMs: 1 });
    const result = await client.protect(JPEG);
    assert.deepEqual(result.data, flip(JPEG));
    assert.equal(busy.requests.length, 2);
    assert.equal(flaky.requests.length, 2);
  } finally {
    await Promise.all([busy.close(), flaky.close()]);
  }
});

test("an unreachable endpoint is passed over", async () => {
  const gone = await standInService();
  await gone.close();
  const service = await standInService();
  try {
    const result = await new GraspClient([gone.url, service.url]).protect(JPEG);
    assert.deepEqual(result.data, flip(JPEG));
  } finally {
    await service.close();
  }
});

test("every endpoint refusing every round is ServiceUnavailable", async () => {
  const busy = await standInService(() => errorAnswer(503, "unavailable", "no"));
  try {
    const client = new GraspClient(busy.url, { maxRetries: 2, backoffBaseMs: 1 });
    await assert.rejects(client.protect(JPEG), (e) => e instanceof ServiceUnavailable && /3 round/.test(e.message));
    assert.equal(busy.requests.length, 3);
  } finally {
    await busy.close();
  }
});

test("504 and 4xx are the service's errors, not retried", async () => {
  for (const [status, kind] of [[504, "deadline_exceeded"], [400, "invalid_image"], [401, "unauthorized"]]) {
    const service = await standInService(() => errorAnswer(status, kind, "said the service"));
    try {
      await assert.rejects(new GraspClient(service.url).protect(JPEG),
        (e) => e instanceof ServiceError && e.kind === kind && e.status === status && e.serviceMessage === "said the service");
      assert.equal(service.requests.length, 1);
    } finally {
      await service.close();
    }
  }
});

test("a non-JSON error body and a missing report are errors that say so", async () => {
  const proxy = await standInService(() => ({ status: 500, body: "Internal oops" }));
  const noReport = await standInService((r) => ({ headers: { "Content-Type": "image/jpeg" }, body: r.body }));
  try {
    await assert.rejects(new GraspClient(proxy.url).protect(JPEG), (e) => e.kind === "http_500" && /oops/.test(e.message));
    await assert.rejects(new GraspClient(noReport.url).protect(JPEG), (e) => e.kind === "bad_response");
  } finally {
    await Promise.all([proxy.close(), noReport.close()]);
  }
});

test("the total time budget ends a slow call with ProtectTimeout", async () => {
  const slow = await standInService(async (r) => {
    await new Promise((resolve) => setTimeout(resolve, 500));
    return protectedAnswer(r);
  });
  try {
    await assert.rejects(new GraspClient(slow.url, { totalTimeoutMs: 100 }).protect(JPEG), ProtectTimeout);
  } finally {
    await slow.close();
  }
});

test("ready() reads /readyz with the token", async () => {
  const service = await standInService((r) => ({ status: r.url.pathname === "/readyz" && r.headers.authorization === "Bearer t" ? 200 : 503 }));
  try {
    assert.equal(await new GraspClient(service.url, { token: "t" }).ready(), true);
    assert.equal(await new GraspClient(service.url).ready(), false);
  } finally {
    await service.close();
  }
});

test("bad arguments are refused at once", () => {
  assert.throws(() => new GraspClient([]), RangeError);
  assert.throws(() => new GraspClient("http://x", { totalTimeoutMs: 0 }), RangeError);
  assert.throws(() => new ProtectOptions({ preset: "max" }), /preset must be one of/);
  assert.throws(() => new ProtectOptions({ siteJpegQuality: 0 }), RangeError);
  assert.throws(() => new ProtectOptions({ colour: "red" }), /unknown option/);
});
