"""Bearer-token authentication of every request but the liveness probe."""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

OPEN_PATHS = frozenset({"/healthz"})


def _digest(token: str) -> bytes:
    # Comparing fixed-length digests keeps the comparison's time independent of the
    # token's length as well as of its content.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def bearer_auth(token: str) -> Middleware:
    """A middleware answering 401 unless ``Authorization: Bearer <token>`` matches.

    The token is compared in constant time (``hmac.compare_digest``) on every request
    except ``GET /healthz``.
    """
    expected = _digest(token)

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        scheme, _, given = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        matches = hmac.compare_digest(_digest(given.strip()), expected)
        if not matches or scheme.lower() != "bearer":
            raise web.HTTPUnauthorized(
                headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="grasp-guard"'},
                text="a valid bearer token is required (Authorization: Bearer <token>)",
            )
        return await handler(request)

    return check_token
