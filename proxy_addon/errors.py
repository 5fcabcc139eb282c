"""The addon's own exceptions (the SDK's cover the rest)."""

from __future__ import annotations


class Undelivered(Exception):
    """A segment the proxy held, and answered itself, did not reach the site: the client
    must hear it on its next request of that upload."""
