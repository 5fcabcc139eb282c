"""A local HTTPS "site" that records what it receives (its certificates: the demo site's).

Every request is recorded under its ``X-Test-Id`` header. Like X, it answers a chunked
upload's INIT (``?command=INIT``, or the v2 API's ``/2/media/upload/initialize``) with a new
media id.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

from _sites import Arrivals, ThreadedSite
from aiohttp import web

from grasp_guard.demo_site import Certs, make_certs, server_context

__all__ = ["Certs", "Received", "Site", "make_certs"]

KEEP_BODY = 25 * 2**20  # larger bodies are recorded by length and hash only
X_V2_INIT = "/2/media/upload/initialize"
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


class Site(ThreadedSite):
    """The recording HTTPS site, on 127.0.0.1 and a free port."""

    def __init__(self, certs: Certs) -> None:
        super().__init__(server_context(certs), client_max_size=2**31)
        self._received: Arrivals[Received] = Arrivals()
        self._media_ids = itertools.count(1880028106020515840)

    def received(self, test_id: str, timeout_s: float = 10.0) -> Received:
        """What arrived under ``test_id``, waiting up to ``timeout_s`` for it."""
        return self._received.wait(test_id, timeout_s)

    def seen(self, test_id: str) -> bool:
        return test_id in self._received

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/page", self._page)
        app.router.add_route("*", "/{tail:.*}", self._record)

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
        self._received.put(request.headers.get("X-Test-Id", ""), received)
        if request.query.get("command") == "INIT":
            media_id = next(self._media_ids)
            return web.json_response({"media_id": media_id, "media_id_string": str(media_id),
                                      "expires_after_secs": 86400}, status=202)
        if request.path == X_V2_INIT:
            media_id = next(self._media_ids)
            return web.json_response({"data": {"id": str(media_id), "media_key": f"3_{media_id}",
                                               "expires_after_secs": 86400}})
        return web.json_response({"length": length, "sha256": received.sha256})
