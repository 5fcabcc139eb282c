"""Browser origins: CORS for the configured ones (the extension's), 403 for every other.

A request without an ``Origin`` header (the proxy, the SDKs, curl) passes as before. A
browser sends ``Origin`` with every cross-origin request a page or an extension makes, so a
web page that tries to use the local service — a ``fetch``, a form post, a preflight — is
refused before any work is done, whether or not the service asks for a token. An allowed
origin gets its preflight answered here (before the bearer check: a preflight carries no
``Authorization``) and the CORS headers on every answer, errors included, as the answer's
headers go out (``on_response_prepare``: an answer streamed by its handler included).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from grasp_guard.service.middleware import error_response
from grasp_guard.service.report import REPORT_HEADER

ALLOWED_METHODS = "GET, POST"
ALLOWED_HEADERS = "Authorization, Content-Type"
EXPOSED_HEADERS = f"{REPORT_HEADER}, Retry-After"
PREFLIGHT_MAX_AGE_S = 600


def cors_headers(origins: Iterable[str]) -> Callable[[web.Request, web.StreamResponse],
                                                     Awaitable[None]]:
    """An ``on_response_prepare`` callback putting the CORS headers on every answer to an
    allowed origin as its headers go out: errors, preflights and streamed answers alike."""
    allowed = frozenset(origins)

    async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin in allowed:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED_HEADERS
            response.headers.add(hdrs.VARY, hdrs.ORIGIN)

    return add_cors_headers


def origin_guard(origins: Iterable[str]) -> Middleware:
    """A middleware refusing (403, ``forbidden_origin``) any request whose ``Origin`` is not
    one of ``origins``, and answering the preflights of those that are (their CORS headers:
    :func:`cors_headers`). Requests without ``Origin`` pass untouched."""
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
        if (request.method != hdrs.METH_OPTIONS
                or hdrs.ACCESS_CONTROL_REQUEST_METHOD not in request.headers):
            return await handler(request)
        preflight = web.Response(status=204, headers={
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: ALLOWED_METHODS,
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOWED_HEADERS,
            hdrs.ACCESS_CONTROL_MAX_AGE: str(PREFLIGHT_MAX_AGE_S),
        })
        if request.headers.get("Access-Control-Request-Private-Network") == "true":
            # Chromium's Private Network Access: the service lives on loopback.
            preflight.headers["Access-Control-Allow-Private-Network"] = "true"
        return preflight

    return guard_origin
