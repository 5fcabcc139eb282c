"""An aiohttp client middleware that protects an application's own image uploads.

One argument protects every upload a session makes that the policy matches::

    session = aiohttp.ClientSession(middlewares=(GraspMiddleware(client, policy),))

Needs aiohttp >= 3.12 (client middlewares). The request body is read through the payload's
``as_bytes()`` (bytes, strings, ``FormData``, files, async iterables, which cache what
they read so the original can still be sent), rewritten by :func:`rewrite_upload`, and
put back with ``ClientRequest.update_body``.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import ClientHandlerType, ClientRequest, ClientResponse

from grasp_sdk.cache import ProtectCache
from grasp_sdk.client import GraspClient
from grasp_sdk.guard import UploadGuard
from grasp_sdk.hook import UploadRewrite
from grasp_sdk.policy import Policy
from grasp_sdk.result import ProtectFn


class GraspMiddleware:
    """Client middleware applying the upload hook to matching outgoing requests.

    Args:
        client: a :class:`GraspClient`, or any ``protect(data, options)`` coroutine function.
        policy: which requests carry images and how to protect them.
        cache: the LRU of protected images (a fresh one by default).
        on_rewrite: called with each :class:`UploadRewrite` of a matching request.

    A site with ``on_failure: block`` makes a failed protection raise
    :class:`RewriteError` from the request call instead of sending the original.
    """

    def __init__(self, client: GraspClient | ProtectFn, policy: Policy, *,
                 cache: ProtectCache | None = None,
                 on_rewrite: Callable[[UploadRewrite], None] | None = None) -> None:
        self._protect = client.protect if isinstance(client, GraspClient) else client
        self._guard = UploadGuard(policy, cache=cache, on_rewrite=on_rewrite)

    async def __call__(self, request: ClientRequest,
                       handler: ClientHandlerType) -> ClientResponse:
        url = str(request.url)
        payload = request.body
        if not payload or self._guard.candidate(request.method, url, payload.size) is None:
            return await handler(request)
        body = await payload.as_bytes()
        rewrite = await self._guard.rewrite(request.method, url, request.headers, body,
                                            self._protect)
        if rewrite is not None:
            request.headers.clear()
            request.headers.extend(rewrite.headers)
            await request.update_body(rewrite.body)
        return await handler(request)
