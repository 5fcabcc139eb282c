"""Find where an upload states a digest of its image in a form the SDK does not recompute.

A site may check the image against a checksum sent beside it under any name: a JSON
metadata part's ``md5Hash`` (Google Cloud Storage), a form field ``file_sha1``, an
``X-Content-SHA256`` header. A protected image would then be refused by the site, and the
upload lost. Rather than guess the names, look for the digest itself: every run of hex or
base64 (standard or URL-safe) text of a digest's length is compared with the image's
CRC-32, CRC-32C, MD5, SHA-1, SHA-256 and SHA-512. Digests are computed only for the
lengths some run has, so text without such runs costs one regex pass.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from collections.abc import Callable

from grasp_sdk.checksums import crc32c

#: Digest length in bytes → (name, function) of each algorithm with that length.
_ALGORITHMS: dict[int, tuple[tuple[str, Callable[[bytes], bytes]], ...]] = {
    4: (("crc32", lambda d: zlib.crc32(d).to_bytes(4, "big")),
        ("crc32c", lambda d: crc32c(d).to_bytes(4, "big"))),
    16: (("md5", lambda d: hashlib.md5(d).digest()),),
    20: (("sha1", lambda d: hashlib.sha1(d).digest()),),
    32: (("sha256", lambda d: hashlib.sha256(d).digest()),),
    64: (("sha512", lambda d: hashlib.sha512(d).digest()),),
}
_RUN = re.compile(rb"[A-Za-z0-9+/_-]+={0,2}")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


def _decoded(run: bytes) -> list[bytes]:
    """What ``run`` may be the text of: hex, or base64 (padded, or unpadded for digests of
    16 bytes and more: a six-letter word is unpadded base64 of four bytes)."""
    values = []
    if len(run) // 2 in _ALGORITHMS and len(run) % 2 == 0 and _HEX.fullmatch(run):
        values.append(binascii.unhexlify(run))
    bare = run.rstrip(b"=")
    size = len(bare) * 3 // 4
    if size in _ALGORITHMS and len(bare) % 4 != 1 and (size >= 16 or len(run) % 4 == 0):
        padded = bare + b"=" * (-len(bare) % 4)
        values.append(base64.b64decode(padded.replace(b"-", b"+").replace(b"_", b"/")))
    return [value for value in values if len(value) in _ALGORITHMS]


def _candidates(text: bytes) -> dict[int, set[bytes]]:
    """Byte strings of a digest's length that runs of ``text`` decode to, by length (a run
    with slashes, a URL path, is also read piece by piece)."""
    found: dict[int, set[bytes]] = {}
    for match in _RUN.finditer(text):
        run = match.group()
        pieces = [run, *run.split(b"/")] if b"/" in run else [run]
        for value in (value for piece in pieces for value in _decoded(piece)):
            found.setdefault(len(value), set()).add(value)
    return found


def stated_digest(text: bytes, data: bytes) -> str | None:
    """The name of the algorithm whose digest of ``data`` ``text`` states, or None."""
    for length, values in _candidates(text).items():
        for name, digest in _ALGORITHMS[length]:
            if digest(data) in values:
                return name
    return None
