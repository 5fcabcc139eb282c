"""A script on an enabled page cannot use the protection service, through the extension or not."""

from __future__ import annotations

import base64
import json
import re
import urllib.request
from pathlib import Path

import pytest
from _cdp import Browser
from _ext_site import ExtensionSite
from conftest import Service

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

LISTEN_S = 5


def counters(service: Service) -> dict[str, float]:
    """The service's image and refused-origin counters (read without an Origin)."""
    with urllib.request.urlopen(service.url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found = re.findall(r'^(grasp_images_total\{outcome="\w+"\}|grasp_errors_total\{kind="forbidden_origin"\}) '
                       r"(\S+)$", text, re.MULTILINE)
    return {name: float(value) for name, value in found}


async def test_a_page_script_gets_nothing_from_the_service_or_the_extension(
        browser: Browser, site: ExtensionSite, service: Service, face_file: Path) -> None:
    before = counters(service)
    photo = json.dumps(base64.b64encode(face_file.read_bytes()).decode())
    async with browser.page() as page:
        await page.open(site.url("pass.localhost", "spy", "spy"), "window.seen !== undefined")
        answers = await page.evaluate(f"""(async () => {{
  const bytes = Uint8Array.from(atob({photo}), (c) => c.charCodeAt(0));
  const heard = [];
  // 1. The service itself, as a cross-origin fetch and as a no-cors one.
  try {{
    const r = await fetch({json.dumps(service.url)} + "/v1/protect", {{method: "POST", body: bytes,
      headers: {{"Content-Type": "image/jpeg"}}}});
    heard.push("cors fetch answered " + r.status);
  }} catch (e) {{ /* refused by the browser: nothing readable */ }}
  await fetch({json.dumps(service.url)} + "/v1/protect", {{method: "POST", body: bytes, mode: "no-cors"}});
  // 2. A forged port offer, and requests in the extension's shapes, posted to the window.
  const channel = new MessageChannel();
  channel.port1.onmessage = (e) => heard.push("port: " + JSON.stringify(e.data).slice(0, 80));
  window.postMessage({{"grasp-guard:port": true}}, "*", [channel.port2]);
  window.addEventListener("message", (e) => {{ if (e.data?.ok !== undefined) heard.push("window: " + e.data.ok); }});
  for (const message of [{{id: 1, kind: "protect", site: "guard-pass", sizeMode: "any", data: bytes}},
                         {{kind: "protect", site: "guard-pass", data: {photo}}}]) {{
    window.postMessage(message, "*");
    channel.port1.postMessage(message);
  }}
  // 3. The extension's messaging API, which web pages are not given.
  heard.push("chrome.runtime.id: " + String(globalThis.chrome?.runtime?.id));
  await new Promise((resolve) => setTimeout(resolve, {LISTEN_S * 1000}));
  return heard;
}})()""")
        seen = await page.evaluate("window.seen")
    assert answers == ["chrome.runtime.id: undefined"], answers
    # The page never saw a port offer, the extension's or its own forged one (the
    # extension's page script hides them all), only its other messages.
    assert seen and sum(m["ports"] for m in seen) == 0, seen
    after = counters(service)
    refused = 'grasp_errors_total{kind="forbidden_origin"}'
    assert after.get(refused, 0) - before.get(refused, 0) >= 2  # both fetches, refused there
    images = {k: v for k, v in after.items() if k.startswith("grasp_images")}
    assert images == {k: v for k, v in before.items() if k.startswith("grasp_images")}


FRESH_FRAME = """(() => {
  const native = (fn) => typeof fn === "function" && String(fn).includes("[native code]");
  const frame = document.createElement("iframe");
  frame.srcdoc = "<p>a frame of the page's own</p>";
  document.body.appendChild(frame);
  const fresh = frame.contentWindow;  // its first document, before the srcdoc one loads
  return {getFile: native(fresh.FileSystemFileHandle?.prototype.getFile),
          getType: native(fresh.ClipboardItem?.prototype.getType), fetch: native(fresh.fetch)};
})()"""


@pytest.mark.xfail(strict=True, reason=(
    "known limitation, measured on Chromium: a srcdoc iframe's first document, reached by its "
    "parent at once, still has the browser's getFile, getType and fetch (the extension's "
    "page-world script runs there only when the srcdoc document starts, in the same realm): a "
    "page script that keeps them can read a picked handle's or the clipboard's original. Not "
    "closable from the page's world: `window[i]` reaches a new frame without any getter to "
    "patch. README, 'What it does not promise'"))
async def test_a_fresh_frames_built_ins_are_the_extensions_at_once(
        browser: Browser, site: ExtensionSite) -> None:
    async with browser.page() as page:
        await page.open(site.url("pass.localhost", "spy", "spy"), "window.seen !== undefined")
        found = await page.evaluate(FRESH_FRAME)
    assert found == {"getFile": False, "getType": False, "fetch": False}, found
