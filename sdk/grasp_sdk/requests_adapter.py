"""A requests transport adapter that protects an application's own image uploads.

Needs ``grasp-guard[requests]``. Mount it on a session for the schemes (or URL prefixes)
to watch; every upload the policy matches goes out protected::

    with SyncGraspClient("http://127.0.0.1:8765") as grasp, requests.Session() as http:
        http.mount("https://", GraspAdapter(grasp, policy))
        http.post(url, files={"file": open("me.jpg", "rb")})

A body given as a stream (a generator, a file) is read up to the site's ``max_bytes``; a
longer one goes out untouched. The prepared request the session made carries the protected
body afterwards: a redirect (307, 308: S3's regional one, an upload host's move) is made from
it, and sends the protected photo to the next host, never the original.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from grasp_sdk import headers as hdrs
from grasp_sdk.bodies import read_within
from grasp_sdk.cache import ProtectCache
from grasp_sdk.guard import UploadGuard, declared_length
from grasp_sdk.hook import UploadRewrite
from grasp_sdk.policy import Policy
from grasp_sdk.result import SyncProtectFn
from grasp_sdk.sync_client import SyncGraspClient

_CHUNK = 2**16


class GraspAdapter(HTTPAdapter):
    """``HTTPAdapter`` applying the upload hook to matching requests, then sending them.

    Takes :class:`grasp_sdk.httpx_transport.GraspTransport`'s arguments but ``transport``;
    ``**kwargs`` are ``HTTPAdapter``'s own (``max_retries``, ``pool_connections``, ...). A
    site with ``on_failure: block`` makes a failed protection raise :class:`RewriteError`
    from the request call instead of sending the original.
    """

    def __init__(self, client: SyncGraspClient | SyncProtectFn, policy: Policy, *,
                 cache: ProtectCache | None = None,
                 on_rewrite: Callable[[UploadRewrite], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._protect = client.protect if isinstance(client, SyncGraspClient) else client
        self._guard = UploadGuard(policy, cache=cache, on_rewrite=on_rewrite)

    def send(self, request: PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: bool | str = True, cert: Any = None,
             proxies: dict[str, str] | None = None) -> Response:
        return super().send(self._protected(request), stream=stream, timeout=timeout,
                            verify=verify, cert=cert, proxies=proxies)

    def _protected(self, request: PreparedRequest) -> PreparedRequest:
        method, url = request.method or "", request.url or ""
        if request.body is None:
            return request
        # requests allows bytes values; the hook reads text (latin-1 keeps every byte).
        fields = [(k, v.decode("latin-1") if isinstance(v, bytes) else v)
                  for k, v in request.headers.items()]
        rule = self._guard.candidate(method, url,
                                     declared_length(hdrs.get(tuple(fields), "content-length")))
        if rule is None:
            return request
        body = read_within(_chunks(request.body), rule.max_bytes)
        if not isinstance(body, bytes):  # sent as it streams, from a copy: it is read once
            sent = request.copy()
            sent.body = self._guard.stream_too_long(method, url, rule, body)
            return sent
        rewrite = self._guard.rewrite_sync(method, url, fields, body, self._protect)
        if rewrite is not None:
            request.headers = CaseInsensitiveDict(rewrite.headers)
        request.body = body if rewrite is None else rewrite.body
        # bytes now, not the file it was read from: a redirect sends them, with no rewind
        request._body_position = None  # type: ignore[attr-defined]
        return request


def _chunks(body: Any) -> Iterable[bytes]:
    """A prepared body as bytes chunks: bytes, text (sent as UTF-8), a file, an iterable."""
    if isinstance(body, bytes | bytearray | memoryview):
        return (bytes(body),)
    if isinstance(body, str):
        return (body.encode("utf-8"),)
    if hasattr(body, "read"):
        return _read(body)
    return (_as_bytes(chunk) for chunk in body)


def _read(file: Any) -> Iterator[bytes]:
    while chunk := file.read(_CHUNK):
        yield _as_bytes(chunk)


def _as_bytes(chunk: bytes | str) -> bytes:
    # urllib3 sends text chunks as UTF-8.
    return chunk.encode("utf-8") if isinstance(chunk, str) else chunk
