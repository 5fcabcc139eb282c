/** Shared by the JS tests: the table's JPEG, the stand-in service edit, the compiled policy. */

import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { fileURLToPath } from "node:url";

import { fromBase64 } from "../src/bytes.js";
import { imageType } from "../src/sniff.js";

export const REPO = fileURLToPath(new URL("../../../", import.meta.url));
export const CASES = JSON.parse(readFileSync(`${REPO}tests/policy_cases.json`, "utf-8"));
/** A small, whole JPEG (8 x 8). */
export const JPEG = fromBase64(CASES.images.jpeg);

/** JSON with every character past ASCII `\u`-escaped, as Python's json.dumps writes it. */
export const asciiJson = (value) => JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

/**
 * `data` percent-encoded as Python's `quote_from_bytes(data, safe="")` writes it: each byte
 * but the unreserved as `%XX`, a space as `space` (`+`: `quote_plus`, as `urlencode` writes it).
 */
export function quoteBytes(data, space = "%20") {
  return Array.from(data, (byte) => {
    const c = String.fromCharCode(byte);
    return /[A-Za-z0-9_.~-]/.test(c) ? c : byte === 0x20 ? space : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }).join("");
}

/** The stand-in service's edit: four bytes near the end inverted (same length, same type). */
export function flip(data) {
  const out = data.slice();
  for (let i = data.length - 6; i < data.length - 2; i++) out[i] ^= 0xff;
  return out;
}

/** A ProtectFn that flips every image and records its calls (`mode: "fail"` rejects). */
export function fakeProtect(mode = "flip") {
  const calls = [];
  const protect = async (data, options) => {
    calls.push({ data, options });
    if (mode === "fail") throw new Error("service down");
    const out = mode === "same" ? data : mode === "grow" ? new Uint8Array([...data, 1, 2]) : flip(data);
    return { data: out, contentType: imageType(data) ?? "", report: { faces: 1, protected: out !== data } };
  };
  protect.calls = calls;
  return protect;
}

/**
 * The shipped policy compiled to JSON: the file `$GRASP_GUARD_POLICY_JSON` names (the pytest
 * runner writes it), else what `grasp-guard policy compile` prints from this checkout's venv.
 */
export function compiledPolicyText() {
  const path = process.env.GRASP_GUARD_POLICY_JSON;
  if (path) return readFileSync(path, "utf-8");
  const cli = `${REPO}.venv/bin/grasp-guard`;
  if (!existsSync(cli)) {
    throw new Error("set GRASP_GUARD_POLICY_JSON or run `make setup` (no .venv/bin/grasp-guard)");
  }
  return execFileSync(cli, ["policy", "compile"], { encoding: "utf-8", env: { ...process.env, GRASP_GUARD_POLICY: "" } });
}

/**
 * A stand-in protection service on 127.0.0.1: records each request and answers with
 * `answer(request)` (default: the image flipped, as the real service answers).
 * @param {(request: {method: string, url: URL, headers: object, body: Uint8Array}) =>
 *   {status?: number, headers?: object, body?: Uint8Array | string}} [answer]
 */
export async function standInService(answer = protectedAnswer) {
  const requests = [];
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const request = { method: req.method, url: new URL(req.url, "http://x"), headers: req.headers, body: new Uint8Array(Buffer.concat(chunks)) };
    requests.push(request);
    const { status = 200, headers = {}, body = new Uint8Array(0) } = await answer(request, requests.length);
    res.writeHead(status, headers);
    res.end(typeof body === "string" ? body : Buffer.from(body));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
}

/** What the service answers for a protected image. */
export function protectedAnswer(request) {
  return {
    headers: { "Content-Type": request.headers["content-type"], "X-Grasp-Report": '{"protected":true,"faces":1}' },
    body: flip(request.body),
  };
}

/** The service's JSON error answer. */
export function errorAnswer(status, kind, message, headers = {}) {
  return { status, headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify({ error: { kind, message } }) };
}
