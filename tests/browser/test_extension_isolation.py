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
