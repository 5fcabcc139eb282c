"""A local HTTP "site" with the pages the extension tests upload from, on 127.0.0.1.

One server answers every ``*.localhost`` name (Chromium resolves them to loopback, and
takes them as secure contexts): the host picks the policy site, the path the page. Every
page posts what the page script chose to ``/upload/<id>`` (the id from the page's
``?id=``); the site records the photo field of each upload by id.
"""

from __future__ import annotations

from dataclasses import dataclass

from _sites import Arrivals, ThreadedSite
from aiohttp import web

UPLOAD_FIELD = "photo"
CANVAS_SCALE = 0.8  # what the canvas page shrinks a photo's sides by

# Each page reads the photo the way some sites do, then posts it with fetch(FormData).
# window.uploaded says what happened ("200" or an error), for the test to wait on.
_SCRIPT = """
const id = new URLSearchParams(location.search).get("id");
async function post(blob, name) {
  const form = new FormData();
  form.append("note", "kept");
  form.append("@FIELD@", blob, name);
  try {
    const resp = await fetch("/upload/" + id, {method: "POST", body: form});
    window.uploaded = String(resp.status);
  } catch (error) {
    window.uploaded = "error: " + error.message;
  }
}
async function readAndPost(file) {  // what the page's script read: window.seen, its SHA-256
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
  window.seen = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
  await post(file, file.name);
}
async function shrink(file) {
  const bitmap = await createImageBitmap(file);
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * @SCALE@);
  canvas.height = Math.round(bitmap.height * @SCALE@);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
}
""".replace("@FIELD@", UPLOAD_FIELD).replace("@SCALE@", str(CANVAS_SCALE))

PAGES = {
    # the photo chosen in a file input, posted as it is
    "input": """<input type="file" accept="image/*">
<script>@SCRIPT@
document.querySelector("input").addEventListener("change", (e) => post(e.target.files[0], e.target.files[0].name));
</script>""",
    # the photo dropped on a zone, posted as it is
    "drop": """<div id="zone" style="width:400px;height:300px;border:2px dashed">drop here</div>
<script>@SCRIPT@
const zone = document.getElementById("zone");
zone.addEventListener("dragover", (e) => e.preventDefault());
zone.addEventListener("drop", (e) => { e.preventDefault(); const f = e.dataTransfer.files[0]; post(f, f.name); });
</script>""",
    # the photo chosen in a file input, shrunk in a canvas, posted as a new JPEG
    "canvas": """<input type="file" accept="image/*">
<script>@SCRIPT@
document.querySelector("input").addEventListener("change", async (e) => post(await shrink(e.target.files[0]), "shrunk.jpg"));
</script>""",
    # the photo chosen in a file input a script made and opened without putting it in the
    # document (its events never reach the window), posted as it is; the page listens on the
    # input's detached container, in the capture phase, before the picker opens: its listener
    # would run before any the extension adds to the input then
    "detached": """<script>@SCRIPT@
const box = document.createElement("div");
window.picker = box.appendChild(document.createElement("input"));
window.picker.type = "file";
// capture: on the way down, before the input
box.addEventListener("change", (e) => readAndPost(e.target.files[0]), true);
</script>""",
    # the photo chosen in a file input of a plain HTML form, which the user submits at once
    # (no script: the browser posts the form and leaves the page)
    "form": """<form method="post" enctype="multipart/form-data">
<input type="file" name="@FIELD@" accept="image/*"><input type="hidden" name="note" value="kept">
<button id="send">send</button></form>
<script>document.forms[0].action = "/upload/" + new URLSearchParams(location.search).get("id");</script>""",
    # the "input" page in an iframe of the same site (an upload widget): the user chooses the
    # photo in the frame, whose script posts it; window.uploaded follows the frame's
    "framed": """<iframe></iframe>
<script>
const frame = document.querySelector("iframe");
frame.src = "/input" + location.search;
setInterval(() => { const done = frame.contentWindow?.uploaded; if (done) window.uploaded = done; }, 200);
</script>""",
    # a file input the page writes into an iframe of its own (about:blank, as a rich-text
    # editor's frame is) and listens on; its script posts what the user chose there
    "blank": """<iframe></iframe>
<script>@SCRIPT@
const doc = document.querySelector("iframe").contentDocument;
const input = doc.body.appendChild(doc.createElement("input"));
input.type = "file";
input.addEventListener("change", (e) => readAndPost(e.target.files[0]));
</script>""",
    # a file input in a srcdoc iframe, whose own script hands the choice to the page's
    "srcdoc": """<iframe srcdoc="<input type=file><script>
document.querySelector('input').addEventListener('change', (e) => parent.readAndPost(e.target.files[0]));
</script>"></iframe>
<script>@SCRIPT@</script>""",
    # the user copies a photo and pastes it with the page's own button: its script reads the
    # clipboard (navigator.clipboard.read) and posts the image
    "clipboard": """<script>@SCRIPT@
window.copy = (b64) => navigator.clipboard.write([new ClipboardItem({"image/png":
  new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], {type: "image/png"})})]);
window.paste = async () => {
  const [item] = await navigator.clipboard.read();
  await readAndPost(new File([await item.getType("image/png")], "pasted.png", {type: "image/png"}));
};
</script>""",
    # a file input in a shadow root (a web component's), listened to in its tree: its
    # `change` does not leave it. ?mode=open: the component listens on its root, in the
    # capture phase (window.changes: how many files each change had); ?mode=closed: it reads
    # the input through its onchange property, which no listener call announces
    "shadow": """<div id="host"></div>
<script>@SCRIPT@
const mode = new URLSearchParams(location.search).get("mode");
const root = document.getElementById("host").attachShadow({mode});
const field = root.appendChild(document.createElement("input"));
field.type = "file";
window.field = field;
window.changes = [];
const onChange = (e) => { window.changes.push(e.target.files.length); if (e.target.files.length) readAndPost(e.target.files[0]); };
if (mode === "open") root.addEventListener("change", onChange, true);
else field.onchange = onChange;
</script>""",
    # a page script that listens to every message from its first line, to catch the
    # extension's port if it ever showed
    "spy": """<script>
window.seen = [];
window.addEventListener("message", (e) => window.seen.push({data: JSON.stringify(e.data), ports: e.ports.length}), true);
</script>
<script>@SCRIPT@</script>""",
    # nothing chosen by the user: the page makes the photo's bytes itself and posts them
    "script": """<script>@SCRIPT@
window.sendBytes = (b64) => post(new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], {type: "image/jpeg"}), "made.jpg");
</script>""",
}


@dataclass(frozen=True)
class Upload:
    """The photo field of one upload, and the other field, as the site received them."""

    photo: bytes
    filename: str
    note: str


class ExtensionSite(ThreadedSite):
    """The pages and the upload recorder."""

    def __init__(self) -> None:
        super().__init__(client_max_size=2**26)
        self._uploads: Arrivals[Upload] = Arrivals()

    def url(self, host: str, page: str, test_id: str) -> str:
        return f"http://{host}:{self.port}/{page}?id={test_id}"

    def upload(self, test_id: str, timeout_s: float) -> Upload:
        """What arrived under ``test_id``, waiting up to ``timeout_s``."""
        return self._uploads.wait(test_id, timeout_s)

    def received(self, test_id: str) -> bool:
        return test_id in self._uploads

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/{page}", self._page)
        app.router.add_post("/upload/{id}", self._record)

    async def _page(self, request: web.Request) -> web.Response:
        page = PAGES.get(request.match_info["page"])
        if page is None:
            raise web.HTTPNotFound()
        body = page.replace("@SCRIPT@", _SCRIPT).replace("@FIELD@", UPLOAD_FIELD)
        return web.Response(text=f"<!doctype html><html><body>{body}</body></html>",
                            content_type="text/html")

    async def _record(self, request: web.Request) -> web.Response:
        form = await request.post()
        photo = form.get(UPLOAD_FIELD)
        if not isinstance(photo, web.FileField):
            raise web.HTTPBadRequest(text=f"no file in {UPLOAD_FIELD!r}")
        upload = Upload(photo.file.read(), photo.filename, str(form.get("note")))
        self._uploads.put(request.match_info["id"], upload)
        return web.json_response({"length": len(upload.photo)})
