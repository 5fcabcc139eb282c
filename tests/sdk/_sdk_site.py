"""A local upload site with a stand-in protection service, served from a thread of its own,
and the policy for it.

Synchronous clients (requests, ``httpx.Client``) block the thread they run in: the site
runs its own event loop, so sync and async tests alike can post to it and read what it got.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Self

from aiohttp import web
from grasp_sdk import Policy, parse_policy

#: What the stand-in service adds after each image it "protects".
MARK = b"SERVICE"


@dataclass(frozen=True)
class Upload:
    """One upload as the site received it.

    Attributes:
        headers: the raw header pairs, in order.
        body: the body as it arrived (chunked transfer decoded).
        parts: the multipart fields by name, as the stdlib's MIME parser reads them; None
            for any other body.
    """

    headers: tuple[tuple[str, str], ...]
    body: bytes
    parts: dict[str, bytes] | None

    def header(self, name: str) -> str | None:
        """The first value of header ``name``, or None."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class LocalSite:
    """The recording site and the stand-in service (``POST /v1/protect``) on 127.0.0.1.

    Attributes:
        url: the base URL.
        uploads: what arrived at any path other than the service's, in order.
        protected: the images the service was asked to protect.
    """

    def __init__(self) -> None:
        self.url = ""
        self.uploads: list[Upload] = []
        self.protected: list[bytes] = []
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the site did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/protect", self._protect)
        app.router.add_route("*", "/{tail:.*}", self._record)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def _record(self, request: web.Request) -> web.Response:
        body = await request.read()
        parts = None
        if request.content_type.startswith("multipart/"):
            parts = _form_fields(request.headers["Content-Type"], body)
        headers = tuple((k.decode("latin-1"), v.decode("latin-1"))
                        for k, v in request.raw_headers)
        self.uploads.append(Upload(headers, body, parts))
        return web.Response(text="stored")

    async def _protect(self, request: web.Request) -> web.Response:
        image = await request.read()
        self.protected.append(image)
        report = {"faces": 1, "protected": True}
        return web.Response(body=image + MARK, content_type=request.content_type,
                            headers={"X-Grasp-Report": json.dumps(report)})


def _form_fields(content_type: str, body: bytes) -> dict[str, bytes]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    assert message.is_multipart(), "the multipart body does not parse"
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()}


def local_policy(host: str = "127.0.0.1") -> Policy:
    """The policy for the local site: raw uploads under /rupload/, a 1000-byte max_bytes under
    /small/, any format elsewhere; requests to ``localhost`` block when protection fails."""
    return parse_policy(f"""
sites:
  - name: local-raw
    hosts: [{host}]
    paths: [/rupload/*]
    formats: [raw]
    length_headers: [X-Entity-Length]
  - name: local-small
    hosts: [{host}]
    paths: [/small/*]
    max_bytes: 1000
  - name: local
    hosts: [{host}]
    on_failure: pass
  - name: local-block
    hosts: [localhost]
    on_failure: block
""")


def closed_port_url() -> str:
    """The URL of a port on 127.0.0.1 where nothing listens (a service that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
