"""A local HTTPS "site" that records what it receives (its certificates: the demo site's).

It runs in a thread with its own event loop, so that sync and async tests alike can read
what it recorded. Every request is recorded under its ``X-Test-Id`` header. Like X, it
answers a chunked upload's INIT (``?command=INIT``) with a new ``media_id``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import threading
from dataclasses import dataclass
from typing import Self

from aiohttp import web

from grasp_guard.demo_site import Certs, make_certs, server_context

__all__ = ["Certs", "Received", "Site", "make_certs"]

KEEP_BODY = 25 * 2**20  # larger bodies are recorded by length and hash only
PAGE = """<!doctype html><html><head><title>upload</title></head>
<body><form><input type="file" name="farr" accept="image/*"></form></body></html>"""


@dataclass(frozen=True)
class Received:
    """One request as the site received it.

    Attributes:
        method: the HTTP method.
        path: the path, query included.
        headers: the raw header pairs, in order.
        body: the body (empty when larger than ``KEEP_BODY``).
        length: the body's length.
        sha256: the body's SHA-256, hex.
    """

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    length: int
    sha256: str

    def header(self, name: str) -> str:
        """The first value of header ``name``; fails the test when there is none."""
        value = next((v for k, v in self.headers if k.lower() == name.lower()), None)
        assert value is not None, f"no {name} header in {self.headers}"
        return value


class Site:
    """The recording HTTPS site, on 127.0.0.1 and a free port."""

    def __init__(self, certs: Certs) -> None:
        self._ssl = server_context(certs)
        self._received: dict[str, Received] = {}
        self._arrived = threading.Condition()
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._media_ids = itertools.count(1880028106020515840)
        self.port = 0

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the site did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def received(self, test_id: str, timeout_s: float = 10.0) -> Received:
        """What arrived under ``test_id``, waiting up to ``timeout_s`` for it."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: test_id in self._received, timeout_s):
                raise AssertionError(f"the site received nothing for {test_id!r}")
            return self._received[test_id]

    def seen(self, test_id: str) -> bool:
        with self._arrived:
            return test_id in self._received

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=2**31)
        app.router.add_get("/page", self._page)
        app.router.add_route("*", "/{tail:.*}", self._record)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        self.port = runner.addresses[0][1]
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def _record(self, request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        chunks: list[bytes] = []
        length = 0
        async for chunk in request.content.iter_chunked(2**20):
            digest.update(chunk)
            length += len(chunk)
            if length <= KEEP_BODY:
                chunks.append(chunk)
        received = Received(
            request.method, request.path_qs,
            tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers),
            b"".join(chunks) if length <= KEEP_BODY else b"", length, digest.hexdigest())
        test_id = request.headers.get("X-Test-Id", "")
        with self._arrived:
            self._received[test_id] = received
            self._arrived.notify_all()
        if request.query.get("command") == "INIT":
            media_id = next(self._media_ids)
            return web.json_response({"media_id": media_id, "media_id_string": str(media_id),
                                      "expires_after_secs": 86400}, status=202)
        return web.json_response({"length": length, "sha256": received.sha256})
