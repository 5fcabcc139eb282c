"""Find where an upload states a digest of its image in a form the SDK does not recompute.

A site may check the image against a checksum sent beside it under any name: a JSON
metadata part's ``md5Hash`` (Google Cloud Storage), a form field ``file_sha1``, an
``X-Content-SHA256`` header. A protected image would then be refused by the site, and the
upload lost. Rather than guess the names, look for the digest itself: each token of hex or
base64 (standard or URL-safe) text of a digest's length is compared with the image's
CRC-32, MD5, SHA-1, SHA-256 and SHA-512, and CRC-32C where it is written as base64 (as
Google Cloud Storage writes it). Text is also read with JSON's string escapes and
percent-escapes undone. The tokens are found once (:func:`digest_tokens`) and each digest of an image is
computed once, only for the lengths some token has.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from grasp_sdk.checksums import crc32c

_B64 = rb"A-Za-z0-9+/_\-"
_B64_NO_SLASH = rb"A-Za-z0-9+_\-"
_B64_STANDARD = rb"A-Za-z0-9+/"
_HEX = rb"0-9A-Fa-f"
# Base64 of 4 bytes padded (a CRC), or of 16, 20, 32 and 64 bytes, padded or not.
_B64_LENGTHS = rb"[%s]{6}==|[%s]{22}(?:==)?|[%s]{27}=?|[%s]{43}=?|[%s]{86}(?:==)?"
# A run of the characters of tokens, their escapes included: the patterns read only these.
_RUN = re.compile(rb"[%s=%%\\]{6,}" % _B64)
_TOKENS = (
    # base64 with slashes, delimited by anything else
    re.compile(rb"(?<![%s])(?:%s)(?![%s=])"
               % (_B64, _B64_LENGTHS % ((_B64,) * 5), _B64)),
    # base64 without slashes (URL-safe, or in a URL path), slashes delimiting
    re.compile(rb"(?<![%s])(?:%s)(?![%s=])"
               % (_B64_NO_SLASH, _B64_LENGTHS % ((_B64_NO_SLASH,) * 5), _B64_NO_SLASH)),
    # standard base64, - and _ delimiting (Subresource Integrity's sha256-<base64>)
    re.compile(rb"(?<![%s])(?:%s)(?![%s=])"
               % (_B64_STANDARD, _B64_LENGTHS % ((_B64_STANDARD,) * 5), _B64_STANDARD)),
)
# hex, delimited by anything not hex (``sha256:…``, ``IMG_<md5>.jpg``)
_HEX_TOKENS = re.compile(rb"(?<![%s])(?:[%s]{128}|[%s]{64}|[%s]{40}|[%s]{32}|[%s]{8})(?![%s])"
                         % ((_HEX,) * 7))
# A JSON string escape: \uXXXX, or \ and one character.
_JSON_ESCAPE = re.compile(rb"\\(?:u([0-9A-Fa-f]{4})|(.))", re.DOTALL)

#: (name, digest length, function, whether hex tokens count) of each algorithm looked for.
_DROPBOX_BLOCK = 4 << 20


def _dropbox_content_hash(data: bytes) -> bytes:
    """Dropbox's ``content_hash``: the SHA-256 of the SHA-256s of the file's 4 MB blocks."""
    blocks = (data[i : i + _DROPBOX_BLOCK] for i in range(0, len(data), _DROPBOX_BLOCK))
    return hashlib.sha256(b"".join(hashlib.sha256(block).digest() for block in blocks)).digest()


_ALGORITHMS: tuple[tuple[str, int, Callable[[bytes], bytes], bool], ...] = (
    ("crc32", 4, lambda d: zlib.crc32(d).to_bytes(4, "big"), True),
    # pure Python, ~0.1 µs a byte: only for base64 tokens, which ordinary text rarely has
    ("crc32c", 4, lambda d: crc32c(d).to_bytes(4, "big"), False),
    ("md5", 16, lambda d: hashlib.md5(d).digest(), True),
    ("sha1", 20, lambda d: hashlib.sha1(d).digest(), True),
    ("sha256", 32, lambda d: hashlib.sha256(d).digest(), True),
    ("sha512", 64, lambda d: hashlib.sha512(d).digest(), True),
    ("Dropbox content_hash", 32, _dropbox_content_hash, True),
)


@dataclass(frozen=True)
class DigestTokens:
    """The byte strings of a digest's length that tokens of some text decode to.

    Attributes:
        from_hex: decoded from hex tokens.
        from_base64: decoded from base64 tokens.
    """

    from_hex: frozenset[bytes]
    from_base64: frozenset[bytes]

    def __bool__(self) -> bool:
        return bool(self.from_hex or self.from_base64)

    def __or__(self, other: DigestTokens) -> DigestTokens:
        return DigestTokens(self.from_hex | other.from_hex, self.from_base64 | other.from_base64)


def digest_tokens(texts: Iterable[bytes]) -> DigestTokens:
    """The digest-length tokens of ``texts``: each run of token characters read as it is,
    with JSON string escapes undone, with percent-escapes decoded, and with both."""
    from_hex: set[bytes] = set()
    from_base64: set[bytes] = set()
    for run in (run for text in texts for run in _RUN.findall(text)):
        readings = {run, _json_unescaped(run)} if b"\\" in run else {run}
        if b"%" in run:
            readings |= {unquote_to_bytes(reading) for reading in readings}
        for reading in readings:
            from_hex.update(binascii.unhexlify(token) for token in _HEX_TOKENS.findall(reading))
            for pattern in _TOKENS:
                for token in pattern.findall(reading):
                    bare = token.rstrip(b"=")
                    padded = bare + b"=" * (-len(bare) % 4)
                    from_base64.add(base64.b64decode(padded.replace(b"-", b"+").replace(b"_", b"/")))
    return DigestTokens(frozenset(from_hex), frozenset(from_base64))


def _json_unescaped(run: bytes) -> bytes:
    """``run`` with JSON's escapes undone: ``\\/`` and ``\\u`` of ASCII to their character,
    every other escape (``\\n``, ``\\"``…) to a space, which delimits a token."""
    def one(match: re.Match[bytes]) -> bytes:
        code = int(match.group(1), 16) if match.group(1) else None
        if code is not None:
            return bytes([code]) if code < 0x80 else b" "
        return b"/" if match.group(2) == b"/" else b" "
    return _JSON_ESCAPE.sub(one, run)


class Digests:
    """The digests of one image, each computed when first asked for."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._values: dict[str, bytes] = {}

    def stated_in(self, tokens: DigestTokens) -> str | None:
        """The name of the algorithm whose digest of the image one of ``tokens`` is, or None."""
        base64_lengths = {len(v) for v in tokens.from_base64}
        hex_lengths = {len(v) for v in tokens.from_hex}
        for name, length, digest, hex_counts in _ALGORITHMS:
            if length not in base64_lengths and not (hex_counts and length in hex_lengths):
                continue
            if name not in self._values:
                self._values[name] = digest(self._data)
            value = self._values[name]
            if value in tokens.from_base64 or (hex_counts and value in tokens.from_hex):
                return name
        return None
