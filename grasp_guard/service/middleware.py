"""Every error becomes one JSON answer: ``{"error": {"kind": ..., "message": ...}}``.

The domain errors of :mod:`grasp_guard.errors` map to HTTP statuses here and nowhere else;
429 and 503 answers carry ``Retry-After``. Each error answer is counted by kind.
"""

from __future__ import annotations

import logging

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from grasp_guard.errors import (
    ConfigError,
    DeadlineExceededError,
    ImageTooLargeError,
    InvalidImageError,
    QueueFullError,
    ServiceUnavailableError,
    SizeBudgetError,
    UnsupportedFormatError,
)
from grasp_guard.service.keys import METRICS, SETTINGS

logger = logging.getLogger(__name__)

# Most specific first. A ValueError of no domain class is a bug of ours, not the client's:
# it is a 500 like any other, never a 400 that blames the request.
DOMAIN_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    (InvalidImageError, 400, "invalid_image"),
    (UnsupportedFormatError, 415, "unsupported_format"),
    (ImageTooLargeError, 413, "too_large"),
    (SizeBudgetError, 422, "size_budget"),
    (QueueFullError, 429, "queue_full"),
    (ServiceUnavailableError, 503, "unavailable"),
    (ConfigError, 400, "invalid_options"),
)

HTTP_KINDS = {
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
}

RETRY_STATUSES = frozenset({429, 503})


def classify(exc: Exception) -> tuple[int, str]:
    """The HTTP status and error kind of a domain error; (500, ``internal``) otherwise."""
    if isinstance(exc, DeadlineExceededError):
        # Still queued: the service is overloaded, retry later. Optimising: it is too slow.
        return (504, "deadline_exceeded") if exc.started else (503, "deadline_exceeded")
    for cls, status, kind in DOMAIN_ERRORS:
        if isinstance(exc, cls):
            return status, kind
    return 500, "internal"


def error_response(request: web.Request, status: int, kind: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    """The JSON error answer, with ``Retry-After`` on 429/503 (the settings' unless
    ``headers`` carry one), counted in the metrics."""
    headers = dict(headers or {})
    if status in RETRY_STATUSES:
        headers.setdefault(hdrs.RETRY_AFTER, str(request.app[SETTINGS].retry_after_s))
    request.app[METRICS].errors.labels(kind).inc()
    return web.json_response({"error": {"kind": kind, "message": message}}, status=status,
                             headers=headers)


def _http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    kind = HTTP_KINDS.get(exc.status, f"http_{exc.status}")
    kept = {k: v for k, v in exc.headers.items()
            if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)}
    return error_response(request, exc.status, kind, exc.text or exc.reason, kept)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every error raised below as a JSON error answer."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_exception(request, exc)
    except Exception as exc:
        status, kind = classify(exc)
        if kind == "internal":
            logger.exception("%s %s failed", request.method, request.path)
            message = f"internal error ({type(exc).__name__}); see the service log"
        else:
            logger.info("%s %s: %d %s: %s", request.method, request.path, status, kind, exc)
            message = str(exc) or type(exc).__name__
        retry_after = getattr(exc, "retry_after_s", None)
        headers: dict[str, str] | None = (
            {hdrs.RETRY_AFTER: str(retry_after)} if retry_after is not None else None)
        return error_response(request, status, kind, message, headers)
