"""The extension in a real headless Chromium: photos reach the site protected."""

from __future__ import annotations

from pathlib import Path

import pytest
from _cdp import Browser
from _ext_site import ExtensionSite

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

PROTECT_S = 400


async def test_a_photo_chosen_in_a_file_input_arrives_protected(
        browser: Browser, site: ExtensionSite, face_file: Path) -> None:
    async with browser.page() as page:
        await page.open(site.url("pass.localhost", "input", "input"))
        await page.choose_file("input", face_file)
        got = site.upload("input", PROTECT_S)
        print(await page.notices())
    original = face_file.read_bytes()
    assert got.photo != original
