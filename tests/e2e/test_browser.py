"""A real headless Chromium uploads a face photo through the proxy; the site gets it protected.

Chromium is driven over the DevTools protocol (a websocket, with aiohttp): it loads a page
with an ``<input type=file>`` from the local site, puts the photo in the input, and posts
it with ``fetch`` and ``FormData`` as a site's own script would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _e2e_helpers import Proxy, assert_protected, multipart_parts
from _e2e_site import Site
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from proxy_addon.launch import child

CHROMIUM = Path("/usr/bin/chromium")
FB_PATH = "/ajax/react_composer/attachments/photo/upload"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(720),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]

UPLOAD_JS = """
(async () => {
  const bytes = Uint8Array.from(atob(%(photo)s), c => c.charCodeAt(0));
  const input = document.querySelector("input[type=file]");
  const picked = new DataTransfer();
  picked.items.add(new File([bytes], "me.jpg", {type: "image/jpeg"}));
  input.files = picked.files;
  const form = new FormData();
  form.append("fb_dtsg", "AQH-token");
  form.append("farr", input.files[0]);
  const resp = await fetch(%(path)s, {method: "POST", body: form,
                                      headers: {"X-Test-Id": %(test_id)s}});
  return resp.status + " " + await resp.text();
})()
"""


def spki_sha256(cert_pem: Path) -> str:
    """The base64 SHA-256 of a certificate's public key, as Chromium's SPKI lists take it."""
    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


class DevTools:
    """The few DevTools protocol calls the test needs, over one page's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        await self._ws.send_json({"id": call_id, "method": method, "params": params})
        async for message in self._ws:
            reply = json.loads(message.data)
            if reply.get("id") == call_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply["result"]
        raise AssertionError(f"the browser closed the connection during {method}")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                                 returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")


def devtools_port(profile: Path, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> int:
    """The port Chromium chose for DevTools (it writes it to DevToolsActivePort)."""
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"chromium exited with status {proc.returncode}"
        if active.exists() and active.read_text().strip():
            return int(active.read_text().split()[0])
        time.sleep(0.1)
    raise AssertionError("chromium opened no DevTools port")


async def test_a_browser_upload_arrives_protected(site: Site, guarded: Proxy, face: bytes,
                                                  tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    argv = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--remote-debugging-port=0", f"--proxy-server={guarded.url}",
            "--proxy-bypass-list=<-loopback>",  # Chromium skips the proxy for localhost else
            f"--ignore-certificate-errors-spki-list={spki_sha256(guarded.ca)}", "about:blank"]
    log = tmp_path / "chromium.log"
    with log.open("wb") as out, child(argv, stdout=out, stderr=subprocess.STDOUT) as proc:
        try:
            port = await asyncio.to_thread(devtools_port, profile, proc)
            answer = await _upload(port, f"https://localhost:{site.port}/page", face)
        finally:
            if proc.poll() is None:  # its renderers share its process group
                os.killpg(proc.pid, signal.SIGTERM)
    assert answer.startswith("200 "), answer
    got = site.received("browser")
    parts = multipart_parts(got.body, got.header("Content-Type"))
    assert_protected(face, parts["farr"])
    assert parts["fb_dtsg"] == b"AQH-token"
    assert int(got.header("Content-Length")) == len(got.body)


async def _upload(port: int, page_url: str, face: bytes) -> str:
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json()
        page = next(t for t in targets if t["type"] == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            tools = DevTools(ws)
            await tools.call("Page.navigate", url=page_url)
            for _ in range(600):
                if await tools.evaluate("document.readyState === 'complete' && "
                                        "!!document.querySelector('input[type=file]')"):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"the page never loaded: {page_url}")
            return await tools.evaluate(UPLOAD_JS % {
                "photo": json.dumps(base64.b64encode(face).decode()),
                "path": json.dumps(FB_PATH), "test_id": json.dumps("browser")})
