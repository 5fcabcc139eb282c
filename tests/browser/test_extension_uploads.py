"""The extension in a real headless Chromium, on the local site: what reaches the site.

The uploads that must arrive protected (an iframe's too) run one after the other (on a CPU a batch
saves no time, and each protection must end within the extension's own time limit); each
test then requires that what the site received passes `grasp-guard verify` against the
same default surrogate as the service's (the real CycleGAN). The failure tests switch the
extension to a service that is not there, through its own storage, and back.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import piexif
import pytest
import pytest_asyncio
import torch
from _cdp import Browser, Page
from _ext_site import ExtensionSite, Upload
from conftest import CAMERA, SHRUNK_SIDE, Service
from PIL import Image

from grasp_guard.extension.build import Built
from grasp_guard.faces.choose import default_detector
from grasp_guard.faces.detect import FaceDetector
from grasp_guard.models.weights import WeightsCache
from grasp_guard.models.zoo import DEFAULT_SET, load_editor, resolve_models
from grasp_guard.pipeline import Engine
from grasp_guard.verify import PROTECTED_AT, verify
from proxy_addon.launch import free_port

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1800), pytest.mark.asyncio(loop_scope="module")]

PROTECT_S = 420  # one upload: past 270 s the extension gives up on the service and says so


@dataclass(frozen=True)
class Sent:
    """One upload as the site received it, and the notices its page showed."""

    upload: Upload
    notices: list[dict[str, str]]
    seen: str | None  # the SHA-256 of the photo the page's script read, where it says


async def _input(page: Page, face: Path) -> None:
    await page.choose_file("input", face)


async def _drop(page: Page, face: Path) -> None:
    await page.drop_file("#zone", face)


async def _script(page: Page, face: Path) -> None:
    photo = json.dumps(base64.b64encode(face.read_bytes()).decode())
    await page.evaluate(f"window.sendBytes({photo})")


async def _canvas(page: Page, face: Path) -> None:
    await page.choose_file("input", face)


async def _detached(page: Page, face: Path) -> None:
    await page.evaluate("window.picker.click()")  # the page opens the picker; the user picks
    await page.choose_file_in("window.picker", face)


async def _framed(page: Page, face: Path) -> None:  # the input in the page's iframe
    field = "document.querySelector('iframe').contentDocument?.querySelector('input')"
    await page.wait_for(f"!!({field})", 30)
    await page.choose_file_in(field, face)


async def _clipboard(page: Page, face: Path) -> None:  # copied as a PNG, read by the page
    png = io.BytesIO()
    Image.open(face).save(png, "PNG")
    await page.call("Browser.grantPermissions", permissions=["clipboardReadWrite", "clipboardSanitizedWrite"])
    await page.call("Emulation.setFocusEmulationEnabled", enabled=True)  # a headless tab has no focus
    for step in (f"window.copy({json.dumps(base64.b64encode(png.getvalue()).decode())})", "window.paste()"):
        done = await page.call("Runtime.evaluate", expression=step, userGesture=True, awaitPromise=True)
        assert "exceptionDetails" not in done, done["result"].get("description")


SCENARIOS = {"input": _input, "drop": _drop, "script": _script, "canvas": _canvas,
             "detached": _detached, "framed": _framed, "blank": _framed, "srcdoc": _framed,
             "clipboard": _clipboard}
# The enabled site of each scenario's page: the canvas page's site shrinks its photos.
HOSTS = {name: "pass.localhost" for name in SCENARIOS} | {"canvas": "shrink.localhost"}


@dataclass(frozen=True)
class Verifier:
    """`grasp-guard verify` as this user runs it: the service's default surrogates and
    default face detector, both from the same weights cache."""

    engine: Engine
    detector: FaceDetector


@pytest.fixture(scope="module")
def verifier(caller_weights_cache: Path) -> Verifier:
    names, missing = resolve_models([DEFAULT_SET], cache=caller_weights_cache)
    if missing:
        pytest.skip(f"the default surrogate(s) {', '.join(missing)} not in the weights cache "
                    "(`make setup` fetches them): the reference standing in cannot pass verify")
    engine = Engine([load_editor(n, cache=caller_weights_cache) for n in names],
                    torch.device("cpu"))
    return Verifier(engine, default_detector(WeightsCache(caller_weights_cache)))


class Uploads:
    """Each scenario's upload from a page of an enabled site, made when a test first asks
    for it (one after the other: the tests of a module run in turn)."""

    def __init__(self, browser: Browser, site: ExtensionSite, face: Path) -> None:
        self._browser, self._site, self._face = browser, site, face
        self._sent: dict[str, Sent] = {}

    async def get(self, name: str) -> Sent:
        if name not in self._sent:
            async with self._browser.page() as page:
                await page.open(self._site.url(HOSTS[name], name, name))
                await SCENARIOS[name](page, self._face)
                await page.wait_for("window.uploaded", PROTECT_S)
                upload = await asyncio.to_thread(self._site.upload, name, 10)
                self._sent[name] = Sent(upload, await page.notices(),
                                        await page.evaluate("window.seen ?? null"))
        return self._sent[name]


@pytest.fixture(scope="module")
def protected_uploads(browser: Browser, site: ExtensionSite, face_file: Path) -> Uploads:
    return Uploads(browser, site, face_file)


def assert_protected(original: bytes, received: bytes, verifier: Verifier,
                     notices: object) -> None:
    """``received`` is ``original`` protected: `grasp-guard verify` finds its face and
    measures the editors disrupted on it at our crop. (The site policy runs the `fast`
    preview, tuned to our crop: how far a protection holds at an attacker's own framing,
    which the verdict also weighs, is the engine's to measure, in `bench/`. So verify must
    find the face where the service did: the same detector, from the same cache.)"""
    assert received != original, f"the photo arrived unprotected; notices: {notices}"
    report = verify(original, received, verifier.engine, detector=verifier.detector)
    print(f"verify: {report['verdict']}, DSR {report['dsr_cmua']} (framed "
          f"{report['dsr_framed']}), PSNR {report['psnr']} dB")
    assert len(report["faces"]) == 1, report
    assert report["dsr_cmua"] >= PROTECTED_AT, report


def exif_make(photo: bytes) -> bytes | None:
    return piexif.load(photo)["0th"].get(piexif.ImageIFD.Make)


@pytest.mark.parametrize("name", ["input", "drop", "script", "detached", "framed", "blank",
                                  "srcdoc"])
async def test_a_photo_arrives_protected_with_its_metadata(
        protected_uploads: Uploads, face_file: Path, verifier: Verifier, name: str) -> None:
    sent = await protected_uploads.get(name)
    original = face_file.read_bytes()
    assert_protected(original, sent.upload.photo, verifier, sent.notices)
    assert exif_make(sent.upload.photo) == CAMERA
    assert sent.upload.note == "kept"
    assert not [n for n in sent.notices if n["level"] != "info"], sent.notices


async def test_an_image_a_script_reads_from_the_clipboard_is_protected(
        protected_uploads: Uploads, face_file: Path, verifier: Verifier) -> None:
    sent = await protected_uploads.get("clipboard")
    original = io.BytesIO()
    Image.open(face_file).save(original, "PNG")
    assert_protected(original.getvalue(), sent.upload.photo, verifier, sent.notices)


@pytest.mark.parametrize("name", ["detached", "blank", "srcdoc", "clipboard"])
async def test_the_page_never_reads_the_original(
        protected_uploads: Uploads, face_file: Path, name: str) -> None:
    # the page's fetch wrapper would protect its upload anyway: what the page read decides
    sent = await protected_uploads.get(name)
    assert sent.seen == hashlib.sha256(sent.upload.photo).hexdigest()
    assert sent.seen != hashlib.sha256(face_file.read_bytes()).hexdigest()


@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_a_shadow_roots_input_gets_only_the_protected_choice(
        browser: Browser, site: ExtensionSite, face_file: Path, verifier: Verifier,
        mode: str) -> None:
    # its `change` stays in the shadow tree: the page must not see the input emptied first
    # (open), nor the original through a property handler no listener call announced (closed)
    async with browser.page() as page:
        await page.open(site.url("pass.localhost", "shadow", f"shadow-{mode}") + f"&mode={mode}")
        await page.choose_file_in("window.field", face_file)
        await page.wait_for("window.uploaded", PROTECT_S)
        changes = await page.evaluate("window.changes")
        seen = await page.evaluate("window.seen")
    upload = await asyncio.to_thread(site.upload, f"shadow-{mode}", 10)
    assert_protected(face_file.read_bytes(), upload.photo, verifier, changes)
    assert changes == [1]
    assert seen == hashlib.sha256(upload.photo).hexdigest()


async def test_a_form_the_user_submits_during_protection_posts_the_protected_photo(
        browser: Browser, site: ExtensionSite, face_file: Path, verifier: Verifier) -> None:
    # the browser's own form post, no page script: the submit waits for the photo
    async with browser.page() as page:
        await page.open(site.url("pass.localhost", "form", "form"))
        await page.choose_file("input", face_file)
        await page.click("#send")
        upload = await asyncio.to_thread(site.upload, "form", PROTECT_S)
    assert_protected(face_file.read_bytes(), upload.photo, verifier, "the page was left")
    assert exif_make(upload.photo) == CAMERA
    assert upload.note == "kept"


@pytest.mark.xfail(strict=False, reason=(
    "known limitation: the photo is protected when picked (through the site's declared "
    "shrink) and its canvas-shrunk copy again on its way out; measured on Chromium 156, "
    "verify finds neither protection at the site's copy (DSR 0.00 aligned and framed): "
    "each is tuned to a framing the other resample moves. README, 'What it does not promise'"))
async def test_a_photo_the_page_shrinks_in_a_canvas_arrives_protected(
        protected_uploads: Uploads, face_file: Path, verifier: Verifier) -> None:
    sent = await protected_uploads.get("canvas")
    photo = Image.open(io.BytesIO(sent.upload.photo))
    assert photo.size == (SHRUNK_SIDE, SHRUNK_SIDE)  # what the page made, without EXIF
    assert_protected(face_file.read_bytes(), sent.upload.photo, verifier, sent.notices)


async def test_a_page_of_a_site_the_policy_does_not_enable_sends_the_original(
        browser: Browser, site: ExtensionSite, face_file: Path) -> None:
    async with browser.page() as page:
        await page.open(site.url("plain.localhost", "input", "plain"))
        await page.choose_file("input", face_file)
        await page.wait_for("window.uploaded", 120)
        assert await page.notices() == []
    assert site.upload("plain", 10).photo == face_file.read_bytes()


@pytest_asyncio.fixture(loop_scope="module")
async def service_down(browser: Browser, extension: Built, service: Service) -> AsyncIterator[None]:
    """The extension pointed at a port nothing listens on, for one test."""
    async with browser.page() as popup:
        await popup.open(f"chrome-extension://{extension.extension_id}/popup.html")
        await popup.evaluate(f"chrome.storage.local.set({{service: 'http://127.0.0.1:{free_port()}'}})")
        try:
            yield
        finally:
            await popup.evaluate(f"chrome.storage.local.set({{service: {json.dumps(service.url)}}})")


@pytest.mark.usefixtures("service_down")
async def test_service_down_pass_sends_the_original_with_a_notice(
        browser: Browser, site: ExtensionSite, face_file: Path) -> None:
    async with browser.page() as page:
        await page.open(site.url("pass.localhost", "input", "down-pass"))
        await page.choose_file("input", face_file)
        await page.wait_for("window.uploaded", 300)
        notices = await page.notices()
    assert site.upload("down-pass", 10).photo == face_file.read_bytes()
    assert any(n["level"] == "warning" and "UNPROTECTED" in n["text"] for n in notices), notices


@pytest.mark.usefixtures("service_down")
async def test_service_down_block_refuses_with_a_notice(
        browser: Browser, site: ExtensionSite, face_file: Path) -> None:
    async with browser.page() as page:
        await page.open(site.url("block.localhost", "input", "down-block"))
        await page.choose_file("input", face_file)
        notices = await page.wait_for(
            "[...document.querySelectorAll('grasp-guard-notice')].filter((n) => "
            "n.dataset.level === 'error').map((n) => n.getAttribute('aria-label'))", 300)
        assert "refused" in notices[0]
        assert await page.evaluate("document.querySelector('input').files.length") == 0
        # A photo the page sends itself is refused too: fetch rejects, nothing is sent.
        photo = json.dumps(base64.b64encode(face_file.read_bytes()).decode())
        await page.open(site.url("block.localhost", "script", "down-block-fetch"))
        await page.evaluate(f"window.sendBytes({photo})")
        assert "refused" in await page.wait_for("window.uploaded", 300)
    assert not site.received("down-block")
    assert not site.received("down-block-fetch")
