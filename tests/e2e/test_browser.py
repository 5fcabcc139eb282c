"""A real headless Chromium uploads a face photo through the proxy; the site gets it protected.

Chromium is driven over the DevTools protocol (tests/_cdp.py): it loads a page
with an ``<input type=file>`` from the local site, puts the photo in the input, and posts
it with ``fetch`` and ``FormData`` as a site's own script would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest
from _cdp import CHROMIUM, Page, devtools_port
from _e2e_helpers import Proxy, assert_protected, multipart_parts
from _e2e_site import Site
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from proxy_addon.launch import child

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
            tools = Page(ws)
            await tools.open(page_url, "!!document.querySelector('input[type=file]')")
            return await tools.evaluate(UPLOAD_JS % {
                "photo": json.dumps(base64.b64encode(face).decode()),
                "path": json.dumps(FB_PATH), "test_id": json.dumps("browser")})
