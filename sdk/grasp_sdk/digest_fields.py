"""RFC 9530 digest fields, ``Content-Digest`` and ``Repr-Digest``: parsed, checked, recomputed.

Each field is a Structured Field Dictionary (RFC 9651) of ``algorithm=:BASE64:`` members,
e.g. ``sha-256=:X48E9q...=:, sha-512=:WZDP...==:``. The upload hook only rewrites bodies
sent whole and without content coding, where the content and the representation are the
same bytes: both fields are then the digest of the body.

Only the active algorithms of the IANA registry, sha-256 and sha-512, are recomputed. A
field with another algorithm (the deprecated md5, sha, crc32c...; an unknown one), a field
that does not parse, or one that does not match the body as sent, cannot be carried over to
a rewritten body: the caller leaves the upload untouched, for the reason :func:`problem`
gives. Recomputing changes only the base64 of each member; spacing and any parameters are
kept as sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

#: The digest fields, lower-case.
FIELDS = ("content-digest", "repr-digest")
#: Algorithm key → hash function, for the algorithms recomputed.
ALGORITHMS: dict[str, Callable[[bytes], bytes]] = {
    "sha-256": lambda data: hashlib.sha256(data).digest(),
    "sha-512": lambda data: hashlib.sha512(data).digest(),
}

_OWS = re.compile(r"[ \t]*")
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_BYTES = re.compile(r":([A-Za-z0-9+/]*={0,2}):")
# A parameter's value: any RFC 9651 bare item but a display string (rare; such a field
# fails to parse and the upload is left alone).
_BARE = (r'"(?:[^"\\\x00-\x1f\x7f]|\\["\\])*"|:[A-Za-z0-9+/]*={0,2}:|\?[01]'
         r"|-?\d{1,15}(?:\.\d{1,3})?|@-?\d{1,15}|[A-Za-z*][!#$%&'*+\-.^_`|~:/A-Za-z0-9]*")
_PARAMS = re.compile(rf"(?:;[ ]*{_KEY.pattern}(?:=(?:{_BARE}))?)*")


@dataclass(frozen=True)
class DigestMember:
    """One ``algorithm=:BASE64:`` member of a digest field.

    Attributes:
        algorithm: the dictionary key (lower-case by the syntax).
        digest: the decoded digest.
        span: where the base64 text (between the colons) lies in the field value.
    """

    algorithm: str
    digest: bytes
    span: tuple[int, int]


def parse(value: str) -> tuple[DigestMember, ...]:
    """The members of a digest field value, in order.

    Raises:
        ValueError: the value is not a dictionary of byte sequences.
    """
    members = []
    pos = _end(_OWS, value, 0)
    if pos == len(value):
        raise ValueError("empty value")
    while True:
        key = _KEY.match(value, pos)
        if key is None:
            raise ValueError(f"expected an algorithm name at {value[pos:pos + 12]!r}")
        if value[key.end():key.end() + 1] != "=":
            raise ValueError(f"{key[0]}: expected '=' and a byte sequence :BASE64:")
        digest = _BYTES.match(value, key.end() + 1)
        if digest is None:
            raise ValueError(f"{key[0]}: the value must be a byte sequence :BASE64:")
        try:
            raw = base64.b64decode(digest[1], validate=True)
        except binascii.Error as exc:
            raise ValueError(f"{key[0]}: bad base64 ({exc})") from None
        members.append(DigestMember(key[0], raw, digest.span(1)))
        pos = _end(_OWS, value, _end(_PARAMS, value, digest.end()))
        if pos == len(value):
            return tuple(members)
        if value[pos] != ",":
            raise ValueError(f"expected ',' at {value[pos:pos + 12]!r}")
        pos = _end(_OWS, value, pos + 1)
        if pos == len(value):
            raise ValueError("trailing comma")


def _end(pattern: re.Pattern[str], value: str, pos: int) -> int:
    """Where a match of ``pattern`` (which may match nothing) at ``pos`` ends."""
    match = pattern.match(value, pos)
    return match.end() if match else pos


def problem(value: str, body: bytes | None = None) -> str | None:
    """Why a digest field value cannot be recomputed for a new body, or None if it can.

    Args:
        value: the field value.
        body: the body as sent; when given, every member must be its digest (a field
            that does not match the body describes other bytes, e.g. a whole file of
            which this body is a piece).
    """
    try:
        members = parse(value)
    except ValueError as exc:
        return f"malformed ({exc})"
    unknown = sorted({m.algorithm for m in members} - set(ALGORITHMS))
    if unknown:
        return (f"unsupported algorithm {', '.join(unknown)} "
                f"(only {' and '.join(ALGORITHMS)} are recomputed)")
    if body is not None:
        for member in members:
            if member.digest != ALGORITHMS[member.algorithm](body):
                return f"the {member.algorithm} digest does not match the body"
    return None


def recompute(value: str, body: bytes) -> str:
    """``value`` with each member's digest replaced by that of ``body``.

    Raises:
        ValueError: the value does not parse or names an algorithm not recomputed
            (check with :func:`problem` first).
    """
    members = parse(value)
    digests: dict[str, str] = {}
    out: list[str] = []
    last = 0
    for member in members:
        if member.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm {member.algorithm} cannot be recomputed")
        if member.algorithm not in digests:
            digests[member.algorithm] = base64.b64encode(
                ALGORITHMS[member.algorithm](body)).decode("ascii")
        start, end = member.span
        out += [value[last:start], digests[member.algorithm]]
        last = end
    out.append(value[last:])
    return "".join(out)
