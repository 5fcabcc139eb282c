"""Browser origins: CORS for the configured ones (the extension's), 403 for every other.

A request without an ``Origin`` header (the proxy, the SDKs, curl) passes as before. A
browser sends ``Origin`` with every cross-origin request a page or an extension makes, so a
web page that tries to use the local service — a ``fetch``, a form post, a preflight — is
refused before any work is done, whether or not the service asks for a token. An allowed
origin gets its preflight answered here (before the bearer check: a preflight carries no
``Authorization``) and the CORS headers on every answer, errors included.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from grasp_guard.service.middleware import error_response
from grasp_guard.service.report import REPORT_HEADER

ALLOWED_METHODS = "GET, POST"
ALLOWED_HEADERS = "Authorization, Content-Type"
EXPOSED_HEADERS = f"{REPORT_HEADER}, Retry-After"
PREFLIGHT_MAX_AGE_S = 600


def _allow(response: web.StreamResponse, origin: str) -> None:
    response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
    response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED_HEADERS
    response.headers.add(hdrs.VARY, hdrs.ORIGIN)


def origin_guard(origins: Iterable[str]) -> Middleware:
    """A middleware refusing (403, ``forbidden_origin``) any request whose ``Origin`` is not
    one of ``origins``, answering the preflights of those that are, and adding their CORS
    headers. Requests without ``Origin`` pass untouched."""
    allowed = frozenset(origins)

    @web.middleware
    async def guard_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            return await handler(request)
        if origin not in allowed:
            return error_response(
                request, 403, "forbidden_origin",
                f"requests from the browser origin {origin!r} are refused; allow an origin "
                "with cors_origins in the service settings")
        preflight = (request.method == hdrs.METH_OPTIONS
                     and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers)
        if preflight:
            response: web.StreamResponse = web.Response(status=204, headers={
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: ALLOWED_METHODS,
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOWED_HEADERS,
                hdrs.ACCESS_CONTROL_MAX_AGE: str(PREFLIGHT_MAX_AGE_S),
            })
            if request.headers.get("Access-Control-Request-Private-Network") == "true":
                # Chromium's Private Network Access: the service lives on loopback.
                response.headers["Access-Control-Allow-Private-Network"] = "true"
        else:
            response = await handler(request)
        _allow(response, origin)
        return response

    return guard_origin
