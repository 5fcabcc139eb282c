"""What a page's scripts read of the photos the user picks or drops, in the ways pages get
at them that the window's listeners never see: a file input made by a script and opened
without the extension's patched `click`, one in a closed shadow root read by a window
listener, a document (or an editor's frame) rewritten with `document.open()`, a drop over
a choice still being protected, a form whose file input is `required`, and a form reset while
its photo is being protected.

These tests read only what the page's scripts got, so a stand-in stands for the protection
service: it "protects" a photo by writing over its camera tag (the same length), at once
or, for a photo a test names, after a while. The extension is built for it and loaded in a
Chromium of this module's own; the pages are served from pass.localhost.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import piexif
import pytest
from _cdp import CHROMIUM, Browser, Page, chromium_with
from _sites import ThreadedSite
from aiohttp import web
from conftest import CAMERA, POLICY
from grasp_sdk.policy import load_policy
from PIL import Image

from grasp_guard.extension.build import Built, build_extension

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600),
              pytest.mark.asyncio(loop_scope="module")]

PROTECTED = b"PROTECTED!!"  # what the stand-in writes over CAMERA: the same length
assert len(PROTECTED) == len(CAMERA)
PROTECT_S = 0.5  # the stand-in's time for a photo no test slows down
READ_S = 30  # how long the page's scripts may take to read a photo
SETTLE_S = 2  # then how long a late read (a second change, a resubmit) has to show


def protect(photo: bytes) -> bytes:
    return photo.replace(CAMERA, PROTECTED)


class StandIn(ThreadedSite):
    """The protection service's stand-in. ``delays``: seconds to take over a photo (by its
    bytes), PROTECT_S for others; ``answered``: how many it protected."""

    def __init__(self) -> None:
        super().__init__(client_max_size=2**26)
        self.delays: dict[bytes, float] = {}
        self.answered = 0

    def routes(self, app: web.Application) -> None:
        async def ready(_request: web.Request) -> web.Response:
            return web.Response(text="ready")

        async def protect_one(request: web.Request) -> web.Response:
            photo = await request.read()
            await asyncio.sleep(self.delays.get(photo, PROTECT_S))
            self.answered += 1
            return web.Response(body=protect(photo), content_type=request.content_type,
                                headers={"X-Grasp-Report": json.dumps({"faces": 1})})

        app.router.add_get("/readyz", ready)
        app.router.add_post("/v1/protect", protect_one)


# Each page notes what its scripts got, as they get it: note(label, file). window.digests()
# says, in that order, each label and the SHA-256 of its file (null: none).
_NOTE = """<script>
window.got = [];
window.note = (label, file) => { window.got.push([label, file ?? null]); };
window.digests = () => Promise.all(window.got.map(async ([label, file]) => [label, file && [
  ...new Uint8Array(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()))]
  .map((b) => b.toString(16).padStart(2, "0")).join("")]));
</script>"""

PAGES = {
    # file inputs made by a script and never put in the document, each opened without the
    # input's own click() and read through its onchange, or through a listener the page adds
    # with a same-origin frame's addEventListener (and opened with that frame's click)
    "detached": """<iframe id="frame"></iframe>
<script>
const made = () => { const input = document.createElement("input"); input.type = "file"; return input; };
window.byEvent = made();
byEvent.onchange = () => note("the page's handler", byEvent.files[0]);
window.label = document.createElement("label");
window.byLabel = label.appendChild(made());
byLabel.onchange = () => note("the page's handler", byLabel.files[0]);
window.byElementClick = made();
byElementClick.onchange = () => note("the page's handler", byElementClick.files[0]);
window.frameWindow = document.getElementById("frame").contentWindow;
window.byFrame = made();
frameWindow.EventTarget.prototype.addEventListener.call(byFrame, "change", () => note("the page's handler", byFrame.files[0]));
</script>""",
    # a web component's file input in a closed shadow root; the page kept the root, and a
    # capture listener of its window reads the input through it
    "closed-shadow": """<div id="host"></div>
<script>
const root = document.getElementById("host").attachShadow({mode: "closed"});
window.field = root.appendChild(document.createElement("input"));
field.type = "file";
field.onchange = () => note("the component's onchange", field.files[0]);
window.addEventListener("input", () => note("the window's capture listener", root.querySelector("input").files[0]), true);
</script>""",
    # a component's form in a closed shadow root: a caption, a checkbox, and a file input the
    # page fills itself (a cropped photo); the page listens to the window's `input`
    "closed-form": """<div id="host"></div>
<script>
const root = document.getElementById("host").attachShadow({mode: "closed"});
root.innerHTML = `<input id="caption"><input type="checkbox" id="box" style="width:40px;height:40px">
<input type="file" id="cropped">`;
[window.caption, window.box, window.cropped] = ["caption", "box", "cropped"].map((id) => root.getElementById(id));
const made = new DataTransfer();
made.items.add(new File([new Uint8Array([0xff, 0xd8, 0xff, 0xe0])], "cropped.jpg", {type: "image/jpeg"}));
cropped.files = made.files;
window.inputs = [];
window.addEventListener("input", () => inputs.push([caption.value, box.checked]), true);
window.menuClosed = false;
document.addEventListener("click", () => { menuClosed = true; });
</script>""",
    # the page rewrites its document (document.open, write, close), then listens on the new
    # file input and drop zone
    "rewritten": """<p>loading</p>
<script>
window.rewrite = () => {
  document.open();
  document.write(`<input type="file" id="field">
<div id="zone" style="width:400px;height:300px;border:2px dashed">drop here</div>`);
  document.close();
  const field = document.getElementById("field");
  field.addEventListener("change", () => note("the page's listener", field.files[0]));
  const zone = document.getElementById("zone");
  zone.addEventListener("dragover", (e) => e.preventDefault());
  zone.addEventListener("drop", (e) => { e.preventDefault(); note("the page's listener", e.dataTransfer.files[0]); });
};
</script>""",
    # a rich-text editor: the page writes its about:blank frame's document the same way (a
    # file input, a drop zone filling the frame below it) and listens there
    "rewritten-frame": """<iframe id="editor" style="width:400px;height:300px"></iframe>
<script>
const doc = document.getElementById("editor").contentDocument;
doc.open();
doc.write(`<body style="margin:0"><input type="file" id="field">
<div id="zone" style="position:fixed;left:0;right:0;top:40px;bottom:0">drop here</div></body>`);
doc.close();
window.field = doc.getElementById("field");
field.addEventListener("change", () => note("the page's listener", field.files[0]));
const zone = doc.getElementById("zone");
zone.addEventListener("dragover", (e) => e.preventDefault());
zone.addEventListener("drop", (e) => { e.preventDefault(); note("the page's listener", e.dataTransfer.files[0]); });
</script>""",
    # a file input large enough to drop on
    "pending": """<input type="file" id="field" style="display:block;width:400px;height:100px">
<script>
document.getElementById("field").onchange = (e) => note("the page's onchange", e.target.files[0]);
</script>""",
    # a form the page resets (its "clear" button calls form.reset()), unless it cancels
    "resettable": """<form><input type="file" id="field"></form>
<script>
const form = document.forms[0];
document.getElementById("field").onchange = (e) => note("the page's onchange", e.target.files[0]);
window.cancelResets = false;
form.onreset = (e) => { if (cancelResets) e.preventDefault(); };
</script>""",
    # a plain form (no script) whose file input must not be empty
    "required": """<form method="post" enctype="multipart/form-data" action="/upload/required">
<input type="file" name="photo" accept="image/*" required>
<button id="send" style="width:200px;height:50px">send</button></form>""",
}


class HoldsSite(ThreadedSite):
    """The pages above, on any host; ``posts``: the photo field of each upload (None: no
    file), by the id in its path, in the order they came."""

    def __init__(self) -> None:
        super().__init__(client_max_size=2**26)
        self.posts: dict[str, list[bytes | None]] = {}

    def url(self, page: str) -> str:
        return f"http://pass.localhost:{self.port}/{page}"

    def routes(self, app: web.Application) -> None:
        async def page(request: web.Request) -> web.Response:
            body = PAGES.get(request.match_info["page"])
            if body is None:
                raise web.HTTPNotFound()
            return web.Response(text=f"<!doctype html><html><head>{_NOTE}</head><body>{body}</body></html>",
                                content_type="text/html")

        async def record(request: web.Request) -> web.Response:
            photo = (await request.post()).get("photo")
            got = photo.file.read() if isinstance(photo, web.FileField) else None
            self.posts.setdefault(request.match_info["id"], []).append(got or None)
            return web.Response(text="received")

        app.router.add_get("/{page}", page)
        app.router.add_post("/upload/{id}", record)


@pytest.fixture(scope="module")
def holds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("holds")


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandIn]:
    with StandIn() as running:
        yield running


@pytest.fixture(autouse=True)
def _no_slow_photos(stand_in: StandIn) -> Iterator[None]:
    yield
    stand_in.delays.clear()


@pytest.fixture(scope="module")
def holds_site() -> Iterator[HoldsSite]:
    with HoldsSite() as running:
        yield running


@pytest.fixture(scope="module")
def holds_extension(holds_dir: Path, stand_in: StandIn) -> Built:
    policy = holds_dir / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    return build_extension(holds_dir / "unpacked", load_policy(policy),
                           service=f"http://127.0.0.1:{stand_in.port}")


@pytest.fixture(scope="module")
def holds_browser(holds_extension: Built, holds_dir: Path) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium")
    with chromium_with(holds_extension.folder, holds_dir) as running:
        # the extension's worker is up: its content scripts are registered by then
        worker = f"chrome-extension://{holds_extension.extension_id}/"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{running.port}/json/list", timeout=10) as resp:
                if any(t["url"].startswith(worker) for t in json.load(resp)):
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("the extension's worker never started")
        yield running


@pytest.fixture(scope="module")
def second_file(face_file: Path, holds_dir: Path) -> Path:
    """Another photo (the face mirrored), with the same camera tag."""
    buf = io.BytesIO()
    Image.open(face_file).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
        buf, "JPEG", quality=90, exif=piexif.dump({"0th": {piexif.ImageIFD.Make: CAMERA}}))
    path = holds_dir / "second.jpg"
    path.write_bytes(buf.getvalue())
    return path


def names(**photos: Path) -> Callable[[bytes | str | None], str]:
    """What a photo (its bytes, or their SHA-256) is: "<name> original", "<name> protected"."""
    known = {}
    for name, path in photos.items():
        original = path.read_bytes()
        known[hashlib.sha256(original).hexdigest()] = f"{name} original"
        known[hashlib.sha256(protect(original)).hexdigest()] = f"{name} protected"

    def name_of(photo: bytes | str | None) -> str:
        if photo is None:
            return "no file"
        digest = photo if isinstance(photo, str) else hashlib.sha256(photo).hexdigest()
        return known.get(digest, "another file")
    return name_of


async def what_the_page_read(page: Page, name_of: Callable[[str | None], str],
                             reads: int = 1) -> list[tuple[str, str]]:
    """Each label the page noted and what it got, once it got ``reads`` and a late one had
    time to follow."""
    await page.wait_for(f"window.got.length >= {reads}", READ_S)
    await asyncio.sleep(SETTLE_S)
    return [(label, name_of(digest)) for label, digest in await page.evaluate("window.digests()")]


async def until(done: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


# How the page opens each detached input's picker (the user's click, which lets it open),
# and the input.
OPENERS = {
    "dispatched-click": ("window.byEvent.dispatchEvent(new MouseEvent('click'))", "window.byEvent"),
    "detached-label": ("window.label.click()", "window.byLabel"),
    "htmlelement-click": ("HTMLElement.prototype.click.call(window.byElementClick)",
                          "window.byElementClick"),
    "frame-listener": ("window.frameWindow.HTMLInputElement.prototype.click.call(window.byFrame)",
                       "window.byFrame"),
}


@pytest.mark.parametrize("opener", list(OPENERS))
async def test_a_detached_inputs_choice_reaches_the_page_protected(
        holds_browser: Browser, holds_site: HoldsSite, face_file: Path, opener: str) -> None:
    # The user clicks the page's button, whose script opens the picker of a file input it
    # never put in the document; the user picks a photo: the page's handler gets it protected.
    opens, field = OPENERS[opener]
    async with holds_browser.page() as page:
        await page.open(holds_site.url("detached"), "window.byFrame !== undefined")
        await page.call("Page.enable")
        await page.call("Page.setInterceptFileChooserDialog", enabled=True)  # no dialog: we pick
        opened = await page.call("Runtime.evaluate", expression=opens, userGesture=True)
        assert "exceptionDetails" not in opened, opened
        await page.choose_file_in(field, face_file)
        read = await what_the_page_read(page, names(photo=face_file))
    assert read == [("the page's handler", "photo protected")]


@pytest.mark.parametrize("opener", ["the user's click", "the component's click()"])
async def test_a_window_listener_reading_a_closed_shadow_input_gets_only_the_protected_photo(
        holds_browser: Browser, holds_site: HoldsSite, face_file: Path, opener: str) -> None:
    # The user picks a photo in a component's input, in a closed shadow root: the page's
    # window listener, reading the input through the root it kept, never gets the original.
    async with holds_browser.page() as page:
        await page.open(holds_site.url("closed-shadow"), "window.field !== undefined")
        await page.call("Page.enable")
        await page.call("Page.setInterceptFileChooserDialog", enabled=True)  # no dialog: we pick
        if opener == "the user's click":
            x, y = await page.evaluate("(() => { const r = field.getBoundingClientRect(); "
                                       "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
            for kind in ("mousePressed", "mouseReleased"):
                await page.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        else:
            await page.call("Runtime.evaluate", expression="field.click()", userGesture=True)
        await page.choose_file_in("window.field", face_file)
        read = await what_the_page_read(page, names(photo=face_file), reads=2)
    assert read == [("the window's capture listener", "photo protected"),
                    ("the component's onchange", "photo protected")]


async def test_the_pages_own_events_in_a_closed_root_go_by(
        holds_browser: Browser, holds_site: HoldsSite, stand_in: StandIn) -> None:
    # Typing in a closed root's caption, ticking its checkbox: the page's listener gets each
    # input, and the photo the page put in the root's file input itself stays there, as it is.
    async with holds_browser.page() as page:
        await page.open(holds_site.url("closed-form"), "window.cropped !== undefined")
        answered = stand_in.answered
        await page.evaluate("caption.focus()")
        await page.call("Input.insertText", text="me")
        x, y = await page.evaluate("(() => { const r = box.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            await page.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        await page.wait_for("inputs.length >= 2", READ_S)
        assert await page.evaluate("inputs") == [["me", False], ["me", True]]
        assert await page.evaluate("[cropped.files.length, cropped.files[0].name]") == [1, "cropped.jpg"]
        # a click the page dispatches on its document (a menu closing) reaches its listener
        assert await page.evaluate("document.dispatchEvent(new MouseEvent('click')); menuClosed") is True
    assert stand_in.answered == answered


@pytest.mark.parametrize("how", ["pick", "drop"])
@pytest.mark.parametrize("where", ["page", "frame"])
async def test_a_photo_reaches_a_rewritten_document_protected(
        holds_browser: Browser, holds_site: HoldsSite, face_file: Path, where: str,
        how: str) -> None:
    # The page rewrote its document, or its editor frame's, with document.open(); the user
    # then picks a photo in its file input, or drops one on it: the page gets it protected.
    async with holds_browser.page() as page:
        if where == "page":
            await page.open(holds_site.url("rewritten"), "window.rewrite !== undefined")
            await page.evaluate("window.rewrite()")
            field, zone = "document.getElementById('field')", "#zone"
        else:
            await page.open(holds_site.url("rewritten-frame"), "window.field !== undefined")
            field, zone = "window.field", "#editor"  # the frame's zone fills it
        if how == "pick":
            await page.choose_file_in(field, face_file)
        else:
            await page.drop_file(zone, face_file)
        read = await what_the_page_read(page, names(photo=face_file))
    assert read == [("the page's listener", "photo protected")]


async def test_a_photo_dropped_over_a_choice_being_protected_stands(
        holds_browser: Browser, holds_site: HoldsSite, stand_in: StandIn, face_file: Path,
        second_file: Path) -> None:
    # The user picks photo A (slow to protect), then drops photo B on the same input before
    # A is in: the input ends with B, protected, and the page never gets A after it.
    stand_in.delays[face_file.read_bytes()] = 5
    answered = stand_in.answered
    async with holds_browser.page() as page:
        await page.open(holds_site.url("pending"))
        await page.choose_file("#field", face_file)
        await page.drop_file("#field", second_file)
        await until(lambda: stand_in.answered >= answered + 2, READ_S)  # A's protection too
        await asyncio.sleep(SETTLE_S)
        await page.evaluate("note('in the input at the end', document.getElementById('field').files[0])")
        read = await what_the_page_read(page, names(A=face_file, B=second_file), reads=2)
    assert read == [("the page's onchange", "B protected"), ("in the input at the end", "B protected")]


async def test_a_form_with_a_required_photo_submitted_during_protection_posts_it_once(
        holds_browser: Browser, holds_site: HoldsSite, stand_in: StandIn,
        face_file: Path) -> None:
    # The user picks a photo in a form's required file input and clicks its submit button at
    # once, while the photo is being protected: once it is in, the form is posted, once, with it.
    stand_in.delays[face_file.read_bytes()] = 3
    async with holds_browser.page() as page:
        await page.open(holds_site.url("required"), "document.forms.length === 1")
        await page.choose_file("input", face_file)
        await page.click("#send")
        await until(lambda: bool(holds_site.posts.get("required")), READ_S)
        await asyncio.sleep(SETTLE_S)
    name_of = names(photo=face_file)
    assert [name_of(photo) for photo in holds_site.posts.get("required", [])] == ["photo protected"]


@pytest.mark.parametrize(("cancelled", "expected"), [
    (False, [("in the input at the end", "no file")]),
    (True, [("the page's onchange", "photo protected"), ("in the input at the end", "photo protected")]),
])
async def test_a_form_reset_during_protection_keeps_the_photo_out(
        holds_browser: Browser, holds_site: HoldsSite, stand_in: StandIn, face_file: Path,
        cancelled: bool, expected: list[tuple[str, str]]) -> None:
    # The user picks a photo, then clears the form (the page's form.reset()) while it is being
    # protected: the input stays empty, the page gets no photo. A reset the page cancels
    # leaves the choice standing.
    stand_in.delays[face_file.read_bytes()] = 3
    answered = stand_in.answered
    async with holds_browser.page() as page:
        await page.open(holds_site.url("resettable"), "document.forms.length === 1")
        await page.evaluate(f"window.cancelResets = {str(cancelled).lower()}")
        await page.choose_file("#field", face_file)
        await page.evaluate("document.forms[0].reset()")
        await until(lambda: stand_in.answered > answered, READ_S)
        await asyncio.sleep(SETTLE_S)
        await page.evaluate("note('in the input at the end', document.getElementById('field').files[0])")
        read = await what_the_page_read(page, names(photo=face_file), reads=len(expected))
    assert read == expected
