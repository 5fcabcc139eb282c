"""What a failed protection becomes: the reason in words, and the refusal a client sees."""

from __future__ import annotations

import json

from grasp_sdk import ProtectTimeout, ServiceError, ServiceUnavailable, UnprotectableUpload
from mitmproxy import http

BLOCKED_HEADER = "X-Grasp-Guard"


def describe(exc: BaseException) -> str:
    """A one-line reason for ``exc``: its type and message."""
    if isinstance(exc, TimeoutError):
        return "the protection service did not answer in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def block_status(exc: BaseException) -> int:
    """The status refusing an upload whose protection failed with ``exc``.

    403 when the upload carries an image that cannot be rewritten (a retry will not help),
    504 when the service ran out of time, 503 when no service endpoint took the image,
    502 otherwise (the service failed, or its answer broke the upload's contract).
    """
    if isinstance(exc, UnprotectableUpload):
        return 403
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (TimeoutError, ProtectTimeout)):
            return 504
        if isinstance(seen, ServiceUnavailable):
            return 503
        if isinstance(seen, ServiceError):
            return 502
        seen = seen.__cause__
    return 502


def block_response(exc: BaseException, site: str) -> http.Response:
    """A JSON refusal naming the site and why its upload could not be protected."""
    reason = describe(exc)
    body = {
        "error": {
            "kind": "upload_blocked",
            "site": site,
            "reason": reason,
            "message": f"GRASP Guard could not protect the photo in this upload, and the "
                       f"policy of site {site!r} blocks unprotected uploads: {reason}",
        }
    }
    return http.Response.make(
        block_status(exc),
        json.dumps(body).encode(),
        {"Content-Type": "application/json", BLOCKED_HEADER: "blocked"},
    )


def undelivered_response(exc: BaseException, site: str) -> http.Response:
    """A JSON 502 saying that a segment the proxy held and answered never reached the site."""
    reason = describe(exc)
    body = {
        "error": {
            "kind": "upload_undelivered",
            "site": site,
            "reason": reason,
            "message": f"GRASP Guard accepted an earlier piece of this upload for site "
                       f"{site!r} but could not deliver it: {reason}",
        }
    }
    return http.Response.make(
        502, json.dumps(body).encode(),
        {"Content-Type": "application/json", BLOCKED_HEADER: "undelivered"})
