"""Host, path and field-name patterns of the policy, compiled once to regexes.

* Hosts: an exact name, or a glob where ``*`` matches any run of characters (dots too):
  ``*.fbcdn.net`` matches ``scontent-lhr8-1.xx.fbcdn.net`` but not ``fbcdn.net``.
  ``*`` alone matches any host (e.g. Mastodon or Bluesky instances).
* Paths: a glob where ``*`` matches within one segment and ``**`` across segments
  (``/rupload_igphoto/*``, ``/dms-uploads/**``), or a regex when it starts with ``^``.
  Paths are matched without the query string.
* Field names: exact, or with ``*`` wildcards (``files[*]``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

ANY_HOST = "*"
_HOST_CHARS = re.compile(r"[a-z0-9*?._-]+")


@dataclass(frozen=True)
class HostPattern:
    """A compiled host pattern; ``text`` is what the policy said."""

    text: str
    regex: str

    @property
    def any_host(self) -> bool:
        """Whether this pattern matches every host."""
        return self.text == ANY_HOST

    def matches(self, host: str) -> bool:
        return re.fullmatch(self.regex, host.lower()) is not None


@dataclass(frozen=True)
class PathPattern:
    """A compiled path pattern (glob or ``^regex``); ``text`` is what the policy said."""

    text: str
    regex: str

    def matches(self, path: str) -> bool:
        if self.text.startswith("^"):
            return re.match(self.regex, path) is not None
        return re.fullmatch(self.regex, path) is not None


def parse_host(text: str) -> HostPattern:
    """Compile a host pattern; raises ValueError."""
    host = text.strip().lower()
    if not host or not _HOST_CHARS.fullmatch(host):
        raise ValueError(f"not a host name or host glob: {text!r}")
    regex = "".join(".+" if c == "*" else "." if c == "?" else re.escape(c) for c in host)
    return HostPattern(host, regex)


def parse_path(text: str) -> PathPattern:
    """Compile a path glob, or a regex if it starts with ``^``; raises ValueError."""
    if text.startswith("^"):
        try:
            re.compile(text)
        except re.error as exc:
            raise ValueError(f"bad path regex {text!r}: {exc}") from None
        return PathPattern(text, text)
    if not text.startswith("/"):
        raise ValueError(f"path glob must start with '/' (or be a '^' regex): {text!r}")
    parts = re.split(r"(\*\*|\*|\?)", text)
    wild = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    return PathPattern(text, "".join(wild.get(p, re.escape(p)) for p in parts))


def name_matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether a field name matches any of ``patterns`` (``*`` wildcards only)."""
    return any(
        re.fullmatch(".*".join(re.escape(s) for s in pattern.split("*")), name) is not None
        for pattern in patterns
    )
