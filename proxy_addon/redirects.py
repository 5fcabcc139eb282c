"""Protected uploads a site redirected (307, 308), and their repeats.

A client repeats a redirected upload from its own copy of the request, with the original
photo in it, at an address the policy may not name (S3's regional host, an upload host
that moved). The proxy notes where each protected upload was sent on; when that address
gets the same body (the same declared length, then the same bytes), it is protected as
it was the first time (from the cache: at once), once; any other request there goes as the
policy has it.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin

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

    def sent_again_in(self, body: bytes) -> bool:
        """Whether ``body`` is the one the client sent the first time."""
        return hashlib.sha256(body).digest() == self.digest


class Redirects:
    """Where protected uploads were redirected to, for a few minutes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._noted: OrderedDict[tuple[str, str], tuple[Protected, float]] = OrderedDict()

    def note(self, flow: http.HTTPFlow, upload: Protected) -> None:
        """Note ``flow``'s redirect, if its answer is one, of the protected ``upload``."""
        response = flow.response
        if response is None or response.status_code not in REDIRECT_STATUSES:
            return
        location = response.headers.get("location")
        if not location:
            return
        key = (flow.request.method, urljoin(flow.request.pretty_url, location))
        self._noted.pop(key, None)
        self._noted[key] = (upload, self._clock() + _TTL_S)
        while len(self._noted) > _MAX:
            self._noted.popitem(last=False)

    def awaited(self, method: str, url: str, length: int | None) -> Protected | None:
        """The protected upload whose repeat ``method`` ``url`` with a body of the declared
        ``length`` may be, or None."""
        noted = self._noted.get((method, url))
        if noted is None:
            return None
        if noted[1] < self._clock():
            del self._noted[(method, url)]
            return None
        return noted[0] if noted[0].length == length else None

    def served(self, method: str, url: str) -> None:
        """The repeat of the upload redirected to ``method`` ``url`` came."""
        self._noted.pop((method, url), None)
