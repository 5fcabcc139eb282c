"""Uploads through the proxy during a fault drill, each judged whole where it lands.

Clients post multipart uploads (a face photo, each one different so that the addon's cache
never answers, and a caption) through ``mitmdump`` with the GRASP Guard addon to a local
site. The site judges every arrival: the caption part must be untouched, and the photo part
either byte-identical to the one sent (forwarded unprotected, as ``on_failure: pass`` says)
or a complete image of the same size and type that differs from it (protected). Anything
else, a truncated or spliced body included, is a half-rewritten upload.

Used by ``bench/replica_kills.py``: while replicas die, the proxy must forward each upload
either protected or byte-identical, never half-rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
import re
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from PIL import Image
from skimage import data

from proxy_addon.launch import (
    AddonOptions,
    child,
    free_port,
    mitmdump_command,
    wait_listening,
)
from proxy_addon.settings import TOKEN_ENV

UPLOAD_PATH = "/upload/photo"
CAPTION = b"caption: a photo of me"
def upload_policy(on_failure: str) -> str:
    """A policy that guards multipart uploads to ``UPLOAD_PATH`` on 127.0.0.1 (preset fast)."""
    return f"""\
version: 1
sites:
  - name: bench
    hosts: ["127.0.0.1"]
    paths: [{UPLOAD_PATH}]
    methods: [POST]
    formats: [multipart]
    fields: [photo]
    preset: fast
    on_failure: {on_failure}
"""


MAX_BUFFER = 32 * 2**20


@dataclass
class Landed:
    """What the site received and what the clients were answered."""

    verdicts: Counter[str] = field(default_factory=Counter)  # protected / original
    half_rewritten: list[str] = field(default_factory=list)
    answers: Counter[int] = field(default_factory=Counter)  # the proxy's statuses
    lost: list[str] = field(default_factory=list)  # no answer from the proxy


def unique_photo(n: int) -> bytes:
    """The astronaut's face (220 x 200 px JPEG), its comment naming ``n``: bytes of its own."""
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()[20:240, 140:340]).save(buf, "JPEG", quality=90,
                                                            comment=f"upload {n}")
    return buf.getvalue()


def multipart_parts(body: bytes, content_type: str) -> dict[str, bytes]:
    """The parts of a multipart body by name (parsed here, independently of the SDK)."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    if boundary is None:
        raise ValueError(f"no boundary in {content_type!r}")
    parts: dict[str, bytes] = {}
    for chunk in body.split(b"--" + boundary.group(1).encode())[1:-1]:
        head, _, content = chunk[2:].partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        if name is None or not content.endswith(b"\r\n"):
            raise ValueError(f"a malformed part: {head[:100]!r}")
        parts[name.group(1).decode()] = content[:-2]
    return parts


def judge(original: bytes, body: bytes, content_type: str) -> str:
    """``protected``, ``original``, or why the body that landed is half-rewritten."""
    try:
        parts = multipart_parts(body, content_type)
    except ValueError as exc:
        return f"half-rewritten: {exc}"
    if set(parts) != {"photo", "caption"} or parts["caption"] != CAPTION:
        return f"half-rewritten: parts {sorted(parts)}, caption {parts.get('caption')!r:.60}"
    photo = parts["photo"]
    if photo == original:
        return "original"
    try:
        with Image.open(io.BytesIO(photo)) as image:
            image.load()
            kind, size = image.format, image.size
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's decode failures
        return f"half-rewritten: the photo does not decode: {type(exc).__name__}: {exc}"
    if kind != "JPEG" or size != (200, 220):
        return f"half-rewritten: the photo came as {kind} {size}"
    return "protected"


class Site:
    """The local site: judges each upload against the photo sent under its ``X-Upload-Id``."""

    def __init__(self, landed: Landed) -> None:
        self.landed = landed
        self.sent: dict[str, bytes] = {}

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        original = self.sent.get(request.headers.get("X-Upload-Id", ""))
        if original is None:
            verdict = "half-rewritten: an upload without a known X-Upload-Id"
        else:
            verdict = judge(original, body, request.headers.get("Content-Type", ""))
        if verdict.startswith("half-rewritten"):
            self.landed.half_rewritten.append(verdict)
        else:
            self.landed.verdicts[verdict] += 1
        return web.json_response({"verdict": verdict})


@contextlib.asynccontextmanager
async def serve_site(site: Site) -> AsyncIterator[str]:
    """Run ``site`` on 127.0.0.1 in this event loop; yields its base URL."""
    app = web.Application(client_max_size=MAX_BUFFER)
    app.router.add_post(UPLOAD_PATH, site.receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def guarded_proxy(folder: Path, service_url: str, token: str,
                  timeout_s: float) -> Iterator[str]:
    """mitmdump with the addon in front of ``service_url`` (its log in ``folder``); yields
    its proxy URL."""
    policy = folder / "upload-policy.yaml"
    policy.write_text(upload_policy("pass"))
    port = free_port()
    argv = mitmdump_command(host="127.0.0.1", port=port, confdir=folder / "mitm",
                            allow_hosts=[], stream_large_bodies=MAX_BUFFER,
                            addon=AddonOptions(policy, (service_url,), timeout_s, MAX_BUFFER))
    with (folder / "mitmdump.log").open("wb") as log, \
            child(argv, env={**os.environ, TOKEN_ENV: token}, stdout=log,
                  stderr=subprocess.STDOUT) as proc:
        wait_listening("127.0.0.1", port, proc)
        yield f"http://127.0.0.1:{port}"


async def upload_client(proxy: str | None, site_url: str, site: Site,
                        numbers: itertools.count[int], stop: asyncio.Event,
                        timeout_s: float) -> None:
    """Upload a new photo through ``proxy`` (None: straight to the site), again and again
    until ``stop``."""
    landed = site.landed
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        while not stop.is_set():
            upload_id = str(next(numbers))
            photo = site.sent[upload_id] = unique_photo(int(upload_id))
            form = aiohttp.FormData()
            form.add_field("photo", photo, filename="me.jpg", content_type="image/jpeg")
            form.add_field("caption", CAPTION.decode())
            try:
                async with session.post(site_url + UPLOAD_PATH, data=form, proxy=proxy,
                                        headers={"X-Upload-Id": upload_id}) as resp:
                    await resp.read()
                    landed.answers[resp.status] += 1
            except (TimeoutError, aiohttp.ClientError) as exc:
                landed.lost.append(f"upload {upload_id}: {type(exc).__name__}: {exc}")
