"""Protected uploads a site redirected (307, 308), and their repeats.

A client repeats a redirected upload from its own copy of the request, with the original
photo in it, at an address the policy may not name (S3's regional host, an upload host
that moved). The proxy notes where each protected upload was sent on; when that address
gets the same body (the same declared length, or none declared, then the same bytes), it
is protected as it was the first time (from the cache: at once), once; any other request
there goes as the policy has it. Several uploads may be redirected to one address.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

from mitmproxy import http

REDIRECT_STATUSES = (307, 308)  # the redirects that repeat the method and the body
_TTL_S = 300.0  # how long a redirect's repeat is waited for
_MAX = 256  # redirects noted at once; the oldest goes first


@dataclass(frozen=True)
class Protected:
    """An upload the proxy protected: where the policy matched it, and what the client sent.

    Attributes:
        url: the URL the policy matched.
        site: the policy's site.
        length: the length of the body the client sent.
        digest: its SHA-256.
    """

    url: str
    site: str
    length: int
    digest: bytes

    @classmethod
    def of(cls, url: str, site: str, body: bytes) -> Protected:
        return cls(url, site, len(body), hashlib.sha256(body).digest())


def sent_again(repeats: list[Protected], body: bytes) -> Protected | None:
    """The upload of ``repeats`` whose body ``body`` is (the client sending it again), or
    None; ``body`` is hashed once, however many uploads went to its address."""
    if not repeats:
        return None
    digest = hashlib.sha256(body).digest()
    return next((r for r in repeats if r.digest == digest), None)


class Redirects:
    """Where protected uploads were redirected to, for a few minutes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._noted: OrderedDict[tuple[str, str], list[tuple[Protected, float]]] = OrderedDict()

    def note(self, flow: http.HTTPFlow, upload: Protected) -> None:
        """Note ``flow``'s redirect, if its answer is one, of the protected ``upload``."""
        response = flow.response
        if response is None or response.status_code not in REDIRECT_STATUSES:
            return
        location = response.headers.get("location")
        if not location:
            return
        key = (flow.request.method, _normal(urljoin(flow.request.pretty_url, location)))
        kept = [(u, at) for u, at in self._noted.pop(key, []) if u.digest != upload.digest]
        self._noted[key] = [*kept, (upload, self._clock() + _TTL_S)]
        while len(self._noted) > _MAX:
            self._noted.popitem(last=False)

    def awaited(self, method: str, url: str, length: int | None) -> list[Protected]:
        """The protected uploads whose repeat ``method`` ``url`` with a body of the declared
        ``length`` (None: not declared, a chunked body) may be."""
        if not self._noted:  # every request asks: most when no upload was redirected
            return []
        key = (method, _normal(url))
        now = self._clock()
        live = [(u, at) for u, at in self._noted.get(key, []) if at >= now]
        if not live:
            self._noted.pop(key, None)
            return []
        self._noted[key] = live
        return [u for u, _ in live if length is None or u.length == length]

    def served(self, method: str, url: str, upload: Protected) -> None:
        """The repeat of ``upload``, redirected to ``method`` ``url``, came."""
        key = (method, _normal(url))
        left = [(u, at) for u, at in self._noted.get(key, []) if u is not upload]
        if left:
            self._noted[key] = left
        else:
            self._noted.pop(key, None)


def _normal(url: str) -> str:
    """``url`` as a client sends it: no fragment, the scheme and host in lower case, no
    default port."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # a port no client could send to: no repeat comes
        return url
    if port is not None and (parts.scheme.lower(), port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme.lower(), host, parts.path or "/", parts.query, ""))
