"""A local upload site with a stand-in protection service, served from a thread of its own
(synchronous clients such as requests and ``httpx.Client`` block the thread they run in),
and the policy for it.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP

from _sites import ThreadedSite
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


class LocalSite(ThreadedSite):
    """The recording site and the stand-in service (``POST /v1/protect``) on 127.0.0.1.

    Attributes:
        uploads: what arrived at any path other than the service's, in order (one under
            ``/moved/`` is answered with a 307 to ``localhost``, on no policy's host).
        protected: the images the service was asked to protect.
    """

    def __init__(self) -> None:
        super().__init__()
        self.uploads: list[Upload] = []
        self.protected: list[bytes] = []

    @property
    def url(self) -> str:
        """The base URL."""
        return f"http://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/protect", self._protect)
        app.router.add_route("*", "/{tail:.*}", self._record)

    async def _record(self, request: web.Request) -> web.Response:
        body = await request.read()
        parts = None
        if request.content_type.startswith("multipart/"):
            parts = _form_fields(request.headers["Content-Type"], body)
        headers = tuple((k.decode("latin-1"), v.decode("latin-1"))
                        for k, v in request.raw_headers)
        self.uploads.append(Upload(headers, body, parts))
        if request.path.startswith("/moved/"):  # S3's 307 to its regional host, say
            raise web.HTTPTemporaryRedirect(f"http://localhost:{self.port}/upload")
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
    /small/, any format elsewhere; requests to ``localhost`` block when protection fails (and
    have a 1000-byte max_bytes under /small/ too)."""
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
  - name: local-small-block
    hosts: [localhost]
    paths: [/small/*]
    max_bytes: 1000
    on_failure: block
  - name: local-block
    hosts: [localhost]
    on_failure: block
""")


def closed_port_url() -> str:
    """The URL of a port on 127.0.0.1 where nothing listens (a service that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
