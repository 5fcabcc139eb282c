"""A request's header fields as the SDK's hook reads them, and written back.

Trailers (fields sent after a chunked or HTTP/2 body) follow the headers, as headers: a
digest of the body among them is checked and recomputed like one in the headers. The hook
adds and removes no field, so the fields it returns split back at the same place.
"""

from __future__ import annotations

from grasp_sdk import headers as hdrs
from mitmproxy import http


def fields_of(request: http.Request) -> hdrs.Fields:
    """The request's headers, then its trailers, as ``(name, value)`` str pairs."""
    trailers = request.trailers.fields if request.trailers else ()
    return hdrs.normalise(request.headers.fields + trailers)


def rewrite(request: http.Request, fields: hdrs.Fields, body: bytes) -> None:
    """Give ``request`` the fields (headers, then trailers) and the body the hook made."""
    sent = len(request.headers.fields)
    # Headers first, then the raw body: setting content would recompute Content-Length,
    # and the hook's headers are already exactly right.
    request.headers = _headers(fields[:sent])
    if request.trailers:
        request.trailers = _headers(fields[sent:])
    request.raw_content = body


def _headers(fields: hdrs.Fields) -> http.Headers:
    return http.Headers([(k.encode("latin-1"), v.encode("latin-1")) for k, v in fields])
