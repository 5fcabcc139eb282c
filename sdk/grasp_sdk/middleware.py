"""An aiohttp client middleware that protects an application's own image uploads.

One argument protects every upload a session makes that the policy matches::

    session = aiohttp.ClientSession(middlewares=(GraspMiddleware(client, policy),))

Needs aiohttp >= 3.12 (client middlewares). The request body is read through the payload's
``as_bytes()`` (bytes, strings, ``FormData``, files, async iterables, which cache what
they read so the original can still be sent), rewritten by :func:`rewrite_upload`, and
put back with ``ClientRequest.update_body``.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable

from aiohttp import ClientHandlerType, ClientRequest, ClientResponse

from grasp_sdk.cache import ProtectCache
from grasp_sdk.client import GraspClient
from grasp_sdk.errors import RewriteError
from grasp_sdk.hook import UploadRewrite, rewrite_upload
from grasp_sdk.policy import Policy
from grasp_sdk.result import ProtectFn

logger = logging.getLogger(__name__)

# Set while a rewrite is in progress, so that the service call itself (which may go through
# the same session) is not taken for an upload to protect.
_REWRITING: contextvars.ContextVar[bool] = contextvars.ContextVar("grasp_rewriting",
                                                                  default=False)


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
        self._policy = policy
        self._cache = cache if cache is not None else ProtectCache()
        self._on_rewrite = on_rewrite

    async def __call__(self, request: ClientRequest,
                       handler: ClientHandlerType) -> ClientResponse:
        if _REWRITING.get():
            return await handler(request)
        url = str(request.url)
        rule = self._policy.match(request.method, url)
        payload = request.body
        if rule is None or not payload:
            return await handler(request)
        if payload.size is not None and payload.size > rule.max_bytes:
            logger.info("%s %s: body larger than max_bytes, sent as is", request.method, url)
            return await handler(request)
        body = await payload.as_bytes()
        token = _REWRITING.set(True)
        try:
            rewrite = await rewrite_upload(request.method, url, request.headers, body,
                                           self._policy, self._protect, cache=self._cache)
        except RewriteError as exc:
            if exc.on_failure == "block":
                raise
            logger.warning("%s %s: sending the original upload: %s", request.method, url, exc)
            return await handler(request)
        finally:
            _REWRITING.reset(token)
        if self._on_rewrite is not None:
            self._on_rewrite(rewrite)
        if rewrite.changed:
            request.headers.clear()
            request.headers.extend(rewrite.headers)
            await request.update_body(rewrite.body)
        return await handler(request)
