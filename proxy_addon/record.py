"""What the addon did to a flow, kept in ``flow.metadata`` for tests, tools and logs."""

from __future__ import annotations

from typing import Any

from mitmproxy import http

METADATA_KEY = "grasp_guard"


def record(flow: http.HTTPFlow, action: str, reason: str, site: str | None = None,
           **details: Any) -> dict[str, Any]:
    """Store what the addon did to ``flow`` in its metadata, and return the record.

    ``action`` is one of ``ignored`` (no body, or a small one not to protect: left to
    mitmproxy), ``streamed``, ``buffered``, ``protected``, ``untouched``, ``passed``
    (forwarded unprotected after a failure), ``blocked``; for split uploads also
    ``declared`` (an upload announced its size), ``held`` (a segment kept back and answered
    by the proxy), ``forwarded`` (a held segment the proxy sends on) and ``failed`` (a held
    segment could not be delivered, and the client is told).
    """
    # No per-flow log line: mitmdump's root logger is at DEBUG, so even a debug call would
    # cost every request a log record.
    entry = {"action": action, "reason": reason, "site": site, **details}
    flow.metadata[METADATA_KEY] = entry
    return entry
