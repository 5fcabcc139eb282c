"""httpx transports that protect an application's own image uploads (``grasp-guard[httpx]``).

Wrap the transport a client sends through; every upload the policy matches goes out
protected::

    with (SyncGraspClient("http://127.0.0.1:8765") as grasp,
          httpx.Client(transport=GraspTransport(grasp, policy)) as http):
        http.post(url, files={"file": open("me.jpg", "rb")})

    async with (GraspClient("http://127.0.0.1:8765") as grasp,
                httpx.AsyncClient(transport=AsyncGraspTransport(grasp, policy)) as http):
        await http.post(url, files={"file": jpeg_bytes})

A body given as a stream (a generator, a file) is read up to the site's ``max_bytes``; a
longer one goes out untouched. The request the application made carries the protected body
afterwards: a redirect (307, 308: S3's regional one, an upload host's move) is made from it,
and sends the protected photo to the next host, never the original.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator

import httpx

from grasp_sdk.bodies import aread_within, read_within
from grasp_sdk.cache import ProtectCache
from grasp_sdk.client import GraspClient
from grasp_sdk.guard import UploadGuard, declared_length
from grasp_sdk.hook import UploadRewrite
from grasp_sdk.policy import Policy, SiteRule
from grasp_sdk.result import ProtectFn, SyncProtectFn
from grasp_sdk.sync_client import SyncGraspClient


class GraspTransport(httpx.BaseTransport):
    """Sync transport applying the upload hook to matching requests, then sending them.

    Args:
        client: a :class:`SyncGraspClient`, or any blocking ``protect(data, options)``.
        policy: which requests carry images and how to protect them.
        transport: the transport to send through (``httpx.HTTPTransport()`` by default).
        cache: the LRU of protected images (a fresh one by default).
        on_rewrite: called with each :class:`UploadRewrite` of a matching request.

    A site with ``on_failure: block`` makes a failed protection raise
    :class:`RewriteError` from the request call instead of sending the original.
    """

    def __init__(self, client: SyncGraspClient | SyncProtectFn, policy: Policy, *,
                 transport: httpx.BaseTransport | None = None,
                 cache: ProtectCache | None = None,
                 on_rewrite: Callable[[UploadRewrite], None] | None = None) -> None:
        self._protect = client.protect if isinstance(client, SyncGraspClient) else client
        self._transport = transport if transport is not None else httpx.HTTPTransport()
        self._guard = UploadGuard(policy, cache=cache, on_rewrite=on_rewrite)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._transport.handle_request(self._protected(request))

    def close(self) -> None:
        self._transport.close()

    def _protected(self, request: httpx.Request) -> httpx.Request:
        rule = _candidate(self._guard, request)
        if rule is None:
            return request
        assert isinstance(request.stream, Iterable)
        body = read_within(request.stream, rule.max_bytes)
        if not isinstance(body, bytes):
            chunks = self._guard.stream_too_long(request.method, str(request.url), rule, body)
            return _copy(request, _Chunks(chunks))
        rewrite = self._guard.rewrite_sync(request.method, str(request.url),
                                           request.headers.raw, body, self._protect)
        return _with_body(request, body, rewrite)


class AsyncGraspTransport(httpx.AsyncBaseTransport):
    """:class:`GraspTransport` for ``httpx.AsyncClient``.

    Takes the same arguments, but ``client`` is a :class:`GraspClient` or any
    ``protect(data, options)`` coroutine function, and ``transport`` an async one
    (``httpx.AsyncHTTPTransport()`` by default).
    """

    def __init__(self, client: GraspClient | ProtectFn, policy: Policy, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 cache: ProtectCache | None = None,
                 on_rewrite: Callable[[UploadRewrite], None] | None = None) -> None:
        self._protect = client.protect if isinstance(client, GraspClient) else client
        self._transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._guard = UploadGuard(policy, cache=cache, on_rewrite=on_rewrite)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport.handle_async_request(await self._protected(request))

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def _protected(self, request: httpx.Request) -> httpx.Request:
        rule = _candidate(self._guard, request)
        if rule is None:
            return request
        assert isinstance(request.stream, httpx.AsyncByteStream)
        body = await aread_within(request.stream, rule.max_bytes)
        if not isinstance(body, bytes):
            chunks = self._guard.astream_too_long(request.method, str(request.url), rule, body)
            return _copy(request, _AsyncChunks(chunks))
        rewrite = await self._guard.rewrite(request.method, str(request.url),
                                            request.headers.raw, body, self._protect)
        return _with_body(request, body, rewrite)


class _Chunks(httpx.SyncByteStream):
    """A body sent as it comes from an iterator (a stream partly read already)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks


class _AsyncChunks(httpx.AsyncByteStream):
    """:class:`_Chunks` for an asynchronous stream."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks


def _candidate(guard: UploadGuard, request: httpx.Request) -> SiteRule | None:
    return guard.candidate(request.method, str(request.url),
                           declared_length(request.headers.get("content-length")))


def _with_body(request: httpx.Request, body: bytes,
               rewrite: UploadRewrite | None) -> httpx.Request:
    """The request to send: the rewrite, or the original with the body read into memory."""
    if rewrite is None:
        return _replace(request, request.headers, httpx.ByteStream(body))
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in rewrite.headers]
    return _replace(request, httpx.Headers(headers), httpx.ByteStream(rewrite.body))


def _replace(request: httpx.Request, headers: httpx.Headers, stream: httpx.ByteStream) -> httpx.Request:
    """``request`` itself, now with ``headers`` and the body ``stream``: the client makes a
    redirect's request from it. Content-Length or Transfer-Encoding stay as the
    application's request (or the hook's fix-up) has them."""
    request.headers = headers
    request.stream = stream
    vars(request).pop("_content", None)  # what `request.content` gave: the original's bytes
    request.read()
    return request


def _copy(request: httpx.Request,
          stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> httpx.Request:
    """A copy of ``request`` sending ``stream``, a body read once (a redirect's request,
    made from the application's, finds its stream consumed, as httpx says)."""
    return httpx.Request(request.method, request.url, headers=request.headers, stream=stream,
                         extensions=request.extensions)
