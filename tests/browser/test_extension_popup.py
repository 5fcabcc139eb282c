"""The popup: the service's state, and a site switched off sends its photos as they are."""

from __future__ import annotations

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
