"""Buffer, stream or ignore: which requests may carry an image upload to protect.

Decided from the request line and headers alone (mitmproxy's ``requestheaders``), before
the body arrives. A candidate image upload is buffered for protection. Any other request
streams through untouched, so videos, archives and bodies of unknown length never sit in
the proxy's memory, unless its declared body is small (at most ``SMALL_BODY`` bytes):
those are left to mitmproxy's default buffering, which costs less than streaming them.

On a ``block`` site a signed or content-encoded body, or one labelled video or audio, is
buffered too, for the upload hook to refuse it if it carries an image it cannot rewrite
(and to protect a photo sent under a video's label), and an image declared past the size
limit is refused at once: nothing that site would get unprotected is streamed by.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from grasp_sdk import Policy, SiteRule

SMALL_BODY = 64 * 2**10
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "CONNECT"})
_NEVER_IMAGES = ("video/", "audio/")

Action = Literal["buffer", "stream", "ignore", "refuse"]


class Matcher(Protocol):
    """What :func:`decide` needs of a policy: :meth:`grasp_sdk.Policy.match`."""

    def match(self, method: str, url: str) -> SiteRule | None: ...


class CachedMatcher:
    """A policy's ``match``, memoised per method and URL (query and fragment aside).

    A proxy sees the same few endpoints over and over; matching one against every site's
    host and path patterns costs more than the rest of the decision.

    Args:
        policy: the policy (immutable, so its answers never go stale).
        size: the most URLs remembered; past it the memory starts afresh.
    """

    def __init__(self, policy: Policy, size: int = 4096) -> None:
        self.policy = policy
        self._size = size
        self._seen: dict[tuple[str, str], SiteRule | None] = {}

    def match(self, method: str, url: str) -> SiteRule | None:
        # The host and path, all that matching reads besides the method, end before ? or #.
        key = (method, url.split("?", 1)[0].split("#", 1)[0])
        try:
            return self._seen[key]
        except KeyError:
            pass
        if len(self._seen) >= self._size:
            self._seen.clear()
        rule = self._seen[key] = self.policy.match(method, url)
        return rule


@dataclass(frozen=True)
class Decision:
    """What to do with one request's body.

    Attributes:
        action: ``buffer`` it for protection, ``stream`` it untouched, ``ignore`` the
            request (no body, or a small one that is not a candidate), or ``refuse`` it (an
            image a ``block`` site would get unprotected).
        reason: why, in words.
        site: the policy site the request matched, if any.
        length: the body length its ``Content-Length`` declares, if it declares one.
    """

    action: Action
    reason: str
    site: str | None = None
    length: int | None = None


def decide(method: str, url: str, headers: Mapping[str, str], policy: Matcher,
           max_buffer: int) -> Decision:
    """Whether a request is a candidate image upload, from its method, URL and headers.

    Args:
        method: the HTTP method.
        url: the full URL (its host and path select the policy site).
        headers: the request headers, looked up case-insensitively by the caller's mapping.
        policy: the upload policy (or a :class:`CachedMatcher` of it).
        max_buffer: the largest body (bytes) the proxy holds back, whatever the site allows.

    Returns:
        ``buffer`` for a candidate; otherwise ``stream``, ``ignore`` or ``refuse``, with the
        reason.
    """
    method = method.upper()
    if method in _BODILESS:
        return Decision("ignore", f"{method} carries no upload")
    declared = headers.get("content-length")
    try:
        length = None if declared is None else int(declared)
    except ValueError:
        return Decision("stream", f"unreadable Content-Length {declared!r}")
    rule = policy.match(method, url)
    why_not = _not_a_candidate(rule, headers, length, max_buffer) if rule else \
        "no policy site matches"
    if why_not is None:
        assert rule is not None
        return Decision("buffer", f"candidate upload for site {rule.name!r}", rule.name, length)
    too_long = length is not None and rule is not None and length > min(rule.max_bytes, max_buffer)
    if too_long and rule.on_failure == "block" and _declares_image(headers):
        return Decision("refuse", f"{why_not}: the image cannot be protected", rule.name, length)
    small = length is not None and length <= SMALL_BODY
    return Decision("ignore" if small else "stream", why_not, rule.name if rule else None,
                    length)


def _not_a_candidate(rule: SiteRule, headers: Mapping[str, str], length: int | None,
                     max_buffer: int) -> str | None:
    """Why a request to ``rule``'s site cannot carry an image to protect, or None."""
    strict = rule.on_failure == "block"  # the hook refuses what it cannot rewrite
    if rule.signed and not strict:
        return "the policy marks this site's uploads as signed"
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity") and not strict:
        return f"the body is {encoding}-encoded"
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    # On a block site the label is not taken on trust, within a known length: the hook sniffs.
    if media.startswith(_NEVER_IMAGES) and (not strict or length is None):
        return f"{media} is not an image"
    if length == 0:
        return "empty body"
    limit = min(rule.max_bytes, max_buffer)
    if length is not None and length > limit:
        return f"body of {length} bytes exceeds the {limit}-byte limit"
    return None


def _declares_image(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").strip().lower().startswith("image/")
