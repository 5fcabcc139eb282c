"""The addon's settings: pure parsers of its mitmproxy options, and the parsed values."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from grasp_sdk import Policy, load_policy

TOKEN_ENV = "GRASP_GUARD_TOKEN"
DEFAULT_SERVICE = "http://127.0.0.1:8765"
DEFAULT_TIMEOUT_S = "60"
DEFAULT_MAX_BUFFER = 32 * 2**20


@dataclass(frozen=True)
class GuardSettings:
    """What the addon runs with, parsed from its options.

    Attributes:
        policy: the upload policy; None leaves every request alone.
        endpoints: the protection service base URLs, tried in order.
        token: the service's bearer token, if it asks for one.
        timeout_s: seconds to protect one upload, retries included.
        max_buffer: the largest request body (bytes) held back for protection.
    """

    policy: Policy | None = None
    endpoints: tuple[str, ...] = (DEFAULT_SERVICE,)
    token: str | None = None
    timeout_s: float = float(DEFAULT_TIMEOUT_S)
    max_buffer: int = DEFAULT_MAX_BUFFER


def parse_policy_path(path: str) -> Policy | None:
    """The policy in ``path``; an empty path means none. Raises ValueError (PolicyError)."""
    return load_policy(os.path.expanduser(path)) if path.strip() else None


def parse_endpoints(urls: Sequence[str]) -> tuple[str, ...]:
    """Service base URLs (``http(s)://host[:port][/prefix]``); raises ValueError."""
    if not urls:
        raise ValueError("at least one service URL is required")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s)://host[:port] URL, got {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"a service URL takes no query or fragment, got {url!r}")
    return tuple(urls)


def parse_token(token: str, env: Mapping[str, str] | None = None) -> str | None:
    """The bearer token: the option, else ``$GRASP_GUARD_TOKEN``, else None; raises ValueError."""
    token = token or (os.environ if env is None else env).get(TOKEN_ENV, "")
    if not token:
        return None
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise ValueError("the token must be printable ASCII without spaces")
    return token


def parse_timeout(text: str) -> float:
    """Seconds, a positive finite number written as text; raises ValueError."""
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected a positive number of seconds, got {text!r}")
    return seconds


def parse_max_buffer(value: int) -> int:
    """A byte count of at least 1 KiB; raises ValueError."""
    if value < 1024:
        raise ValueError(f"expected at least 1024 bytes, got {value}")
    return value
