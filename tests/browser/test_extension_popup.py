"""The popup: the service's state, and a site switched off sends its photos as they are."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from _cdp import Browser, Page
from _ext_site import ExtensionSite
from conftest import Service

from grasp_guard.extension.build import Built

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600),
              pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module")
async def popup(browser: Browser, extension: Built) -> AsyncIterator[Page]:
    async with browser.page() as page:
        await page.open(f"chrome-extension://{extension.extension_id}/popup.html")
        yield page


async def test_the_popup_says_the_service_is_ready(popup: Page, service: Service) -> None:
    state = await popup.wait_for("document.getElementById('service-state').textContent", 60)
    assert state == f"Ready: {service.url}"
    assert await popup.evaluate("document.getElementById('service').value") == service.url


async def test_a_site_switched_off_sends_the_original_without_a_notice(
        popup: Page, browser: Browser, site: ExtensionSite, face_file: Path) -> None:
    set_off = "(async () => { const m = await import('./lib/settings.js'); await m.setSiteEnabled(%s, %s); })()"
    await popup.evaluate(set_off % (json.dumps("guard-pass"), "false"))
    try:
        async with browser.page() as page:
            await page.open(site.url("pass.localhost", "input", "switched-off"))
            await page.choose_file("input", face_file)
            await page.wait_for("window.uploaded", 120)
            assert await page.notices() == []
    finally:
        await popup.evaluate(set_off % (json.dumps("guard-pass"), "true"))
    assert site.upload("switched-off", 10).photo == face_file.read_bytes()
    assert await popup.evaluate("chrome.storage.local.get('disabledSites')") == {"disabledSites": []}


_SIGNED_POST = """(() => {
  const id = new URLSearchParams(location.search).get("id");
  const form = new FormData();
  form.append("note", "kept");
  form.append("photo", new Blob([Uint8Array.from(atob(%s), (c) => c.charCodeAt(0))], {type: "image/jpeg"}), "me.jpg");
  // a signature over the body's hash: no upload the extension can rewrite
  fetch("/upload/" + id, {method: "POST", body: form, headers: {"x-amz-content-sha256": "%s"}})
    .then((r) => { window.uploaded = String(r.status); }, (e) => { window.uploaded = "error: " + e.message; });
})()"""


async def test_a_block_site_switched_off_lets_what_it_cannot_rewrite_go(
        popup: Page, browser: Browser, site: ExtensionSite, face_file: Path) -> None:
    # the page's own world learns of the switch: its uploads are no longer the site's
    post = _SIGNED_POST % (json.dumps(base64.b64encode(face_file.read_bytes()).decode()), "ab" * 32)
    async with browser.page() as page:
        await page.open(site.url("block.localhost", "script", "signed-on"))
        await page.evaluate(post)
        assert "refused" in await page.wait_for("window.uploaded", 120)
    set_off = "(async () => { const m = await import('./lib/settings.js'); await m.setSiteEnabled(%s, %s); })()"
    await popup.evaluate(set_off % (json.dumps("guard-block"), "false"))
    try:
        async with browser.page() as page:
            await page.open(site.url("block.localhost", "script", "signed-off"))
            await page.wait_for("performance.now() > 500", 30)  # time for the switch to arrive
            await page.evaluate(post)
            assert await page.wait_for("window.uploaded", 120) == "200"
            assert await page.notices() == []
    finally:
        await popup.evaluate(set_off % (json.dumps("guard-block"), "true"))
    assert not site.received("signed-on")
    assert site.upload("signed-off", 10).photo == face_file.read_bytes()
