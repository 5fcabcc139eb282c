"""Finding a digest of an image stated in text beside it, in any of its usual spellings."""

from __future__ import annotations

import base64
import hashlib
import time
import zlib

import pytest
from grasp_sdk.checksums import crc32c
from grasp_sdk.stated_digests import stated_digest

DATA = b"\xff\xd8\xff\xe0 a photo " * 1000

SPELLINGS = [
    ("md5", hashlib.md5(DATA).digest()),
    ("sha1", hashlib.sha1(DATA).digest()),
    ("sha256", hashlib.sha256(DATA).digest()),
    ("sha512", hashlib.sha512(DATA).digest()),
    ("crc32", zlib.crc32(DATA).to_bytes(4, "big")),
    ("crc32c", crc32c(DATA).to_bytes(4, "big")),
]


@pytest.mark.parametrize(("algorithm", "digest"), SPELLINGS)
def test_every_usual_spelling_is_found(algorithm: str, digest: bytes) -> None:
    url_safe = (digest.hex(), digest.hex().upper(), base64.urlsafe_b64encode(digest).decode())
    for text in (*url_safe, base64.b64encode(digest).decode()):
        assert stated_digest(f'{{"hash": "{text}", "n": 1}}'.encode(), DATA) == algorithm
    for text in url_safe:
        assert stated_digest(f"/files/{text}/meta".encode(), DATA) == algorithm
    if len(digest) >= 16:  # unpadded base64, as JWT-style encoders write it
        bare = base64.urlsafe_b64encode(digest).rstrip(b"=")
        assert stated_digest(b"sum=" + bare, DATA) == algorithm


def test_other_digests_and_plain_words_are_not_taken_for_one() -> None:
    other = hashlib.sha256(b"another photo").hexdigest().encode()
    words = b"upload avatar camera filename form-data image/jpeg 2026-12-06 deadbeef"
    assert stated_digest(other + b" " + words, DATA) is None
    assert stated_digest(hashlib.sha256(DATA).hexdigest().encode() + b"00", DATA) is None


def test_text_without_digest_lengths_costs_no_hashing() -> None:
    big = b"\xff" * 20_000_000  # CRC-32C of it in pure Python would take seconds
    started = time.perf_counter()
    assert stated_digest(b"upload avatar camera filename " * 1000, big) is None
    assert time.perf_counter() - started < 0.5
