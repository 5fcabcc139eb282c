"""Helpers of the end-to-end tests: the face photo, the proxy processes, body parsing."""

from __future__ import annotations

import contextlib
import io
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import piexif
from PIL import Image
from skimage import data

from proxy_addon.launch import child, wait_listening

CAMERA = b"GraspTestCam"
# Where the service's Haar detector finds the face in face_photo(), (x, y, w, h). A plain
# re-encode of the photo at its own quality changes it by a mean |diff| of about 0.1.
FACE_BOX = (37, 46, 97, 97)
START_TIMEOUT_S = 240.0  # the service loads and warms its models on a busy CPU

POLICY = """\
version: 1
defaults:
  preset: fast
  on_failure: pass
sites:
  - name: instagram
    hosts: [localhost]
    paths: [/rupload_igphoto/*]
    methods: [POST]
    formats: [raw]
    length_headers: [X-Entity-Length]
  - name: facebook
    hosts: [localhost]
    paths: [/ajax/react_composer/attachments/photo/upload]
    methods: [POST]
    formats: [multipart]
    fields: [farr]
  - name: x
    hosts: [localhost]
    paths: [/i/media/upload.json]
    methods: [POST]
    formats: [multipart, form_base64]
    fields: [media, media_data]
    size_mode: exact
    chunked_upload: {protocol: x, max_total_bytes: 1000000, max_segments: 8}
  - name: x-v2
    hosts: [localhost]
    paths: [/2/media/upload/initialize, "/2/media/upload/*/append", "/2/media/upload/*/finalize"]
    methods: [POST]
    formats: [multipart, json_base64]
    fields: [media]
    size_mode: exact
    chunked_upload: {protocol: x, max_total_bytes: 1000000, max_segments: 8}
  - name: x-api
    hosts: [localhost]
    paths: [/1.1/media/upload.json]
    methods: [POST]
    formats: [multipart]
    fields: [media]
    size_mode: exact
    chunked_upload: {protocol: x, max_total_bytes: 1000}
  - name: mastodon
    hosts: [localhost]
    paths: [/api/v2/media]
    methods: [POST]
    formats: [multipart]
    fields: [file]
  - name: discord
    hosts: [localhost]
    paths: ["/attachments/**"]
    methods: [PUT]
    formats: [raw]
    size_mode: exact
    on_failure: block
"""


def face_photo() -> bytes:
    """The astronaut's face (220 x 200 px) as a JPEG with an EXIF camera tag."""
    face = data.astronaut()[20:240, 140:340]
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: CAMERA,
                                piexif.ImageIFD.Software: b"grasp-e2e"}})
    buf = io.BytesIO()
    Image.fromarray(face).save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


def assert_protected(original: bytes, received: bytes, *, exact_size: bool = False) -> None:
    """``received`` is ``original`` protected: it decodes to the same size, keeps the EXIF
    camera tag, and its face region changed well beyond what a plain re-encode does."""
    assert received != original, "the image arrived unprotected"
    before = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"), dtype=np.float32)
    after = np.asarray(Image.open(io.BytesIO(received)).convert("RGB"), dtype=np.float32)
    assert after.shape == before.shape
    assert piexif.load(received)["0th"][piexif.ImageIFD.Make] == CAMERA
    if exact_size:
        assert len(received) == len(original)
    x, y, w, h = FACE_BOX
    change = np.abs(after - before)[y:y + h, x:x + w].mean()
    assert change > 0.5, f"the face region barely changed (mean |diff| {change:.2f})"


def multipart_parts(body: bytes, content_type: str) -> dict[str, bytes]:
    """The parts of a multipart body by name (a test-side parser, independent of the SDK's)."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    assert boundary, content_type
    parts: dict[str, bytes] = {}
    for chunk in body.split(b"--" + boundary.group(1).encode())[1:-1]:
        head, _, content = chunk[2:].partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        assert name and content.endswith(b"\r\n"), head
        parts[name.group(1).decode()] = content[:-2]
    return parts


@dataclass(frozen=True)
class Proxy:
    """A running ``grasp-guard proxy``.

    Attributes:
        port: where it listens (127.0.0.1).
        url: its proxy URL.
        ca: its mitmproxy CA certificate.
        mitmdump_pid: the mitmdump process it started.
        log: its combined output.
    """

    port: int
    url: str
    ca: Path
    mitmdump_pid: int
    log: Path


@contextlib.contextmanager
def run_proxy(folder: Path, port: int, policy: Path, site_ca: Path,
              args: Sequence[str]) -> Iterator[Proxy]:
    """``grasp-guard proxy`` with its own confdir, trusting the site's CA upstream."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "proxy.log"
    argv = [sys.executable, "-m", "grasp_guard", "proxy", "--port", str(port),
            "--policy", str(policy), "--confdir", str(folder / "confdir"),
            "--set", f"ssl_verify_upstream_trusted_ca={site_ca}", *args]
    with log.open("wb") as out, child(argv, stdout=out, stderr=subprocess.STDOUT) as proc:
        try:
            wait_listening("127.0.0.1", port, proc, START_TIMEOUT_S)
            pid = _mitmdump_pid(log, proc)
        except Exception as exc:
            raise AssertionError(f"the proxy did not start:\n{log.read_text()[-3000:]}") from exc
        yield Proxy(port, f"http://127.0.0.1:{port}", folder / "confdir" / "mitmproxy-ca-cert.pem",
                    pid, log)
    # SIGTERM to the launcher stops what it started: mitmdump, and the service if any.
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert not Path(f"/proc/{pid}").exists(), "mitmdump outlived the launcher"
    service = re.search(r"service:\s+http://127\.0\.0\.1:(\d+)", log.read_text())
    if service and "--with-service" in args:
        with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", int(service.group(1))), 1):
            raise AssertionError("the service outlived the launcher")


def _mitmdump_pid(log: Path, proc: subprocess.Popen[bytes]) -> int:
    """The pid the launcher's banner names (printed once mitmdump listens)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"mitmdump pid (\d+)", log.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        time.sleep(0.1)
    raise AssertionError("the launcher printed no mitmdump pid")


def peak_rss(pid: int) -> int:
    """The process's peak resident set size (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert found, status
    return int(found.group(1)) * 1024


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+); False when not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
