"""Finding a digest of an image stated in text beside it, in any of its usual spellings."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import zlib
from urllib.parse import quote, urlencode

import numpy as np
import pytest
from grasp_sdk.checksums import crc32c
from grasp_sdk.stated_digests import Digests, digest_tokens

DATA = b"\xff\xd8\xff\xe0 a photo " * 1000

SPELLINGS = [
    ("md5", hashlib.md5(DATA).digest()),
    ("sha1", hashlib.sha1(DATA).digest()),
    ("sha256", hashlib.sha256(DATA).digest()),
    ("sha512", hashlib.sha512(DATA).digest()),
    ("crc32", zlib.crc32(DATA).to_bytes(4, "big")),
]


def stated(*texts: bytes, data: bytes = DATA) -> str | None:
    return Digests(data).stated_in(digest_tokens(texts))


@pytest.mark.parametrize(("algorithm", "digest"), SPELLINGS)
def test_every_usual_spelling_is_found(algorithm: str, digest: bytes) -> None:
    url_safe = (digest.hex(), digest.hex().upper(), base64.urlsafe_b64encode(digest).decode())
    standard = base64.b64encode(digest).decode()
    for text in (*url_safe, standard):
        assert stated(f'{{"hash": "{text}", "n": 1}}'.encode()) == algorithm
        assert stated(json.dumps({"hash": text}).replace("/", "\\/").encode()) == algorithm
        assert stated(urlencode({"photo": "x", "sum": text}).encode()) == algorithm
    for text in url_safe:
        assert stated(f"/files/{text}/meta".encode()) == algorithm
    assert stated(f"sha:{digest.hex()}; IMG_{digest.hex()}.jpg".encode()) == algorithm
    escaped = standard.replace("+", "\\u002B").replace("/", "\\u002F")
    both = quote(standard, safe="/").replace("/", "\\/")
    url_safe_b64 = base64.urlsafe_b64encode(digest).decode()
    for text in (f'"integrity": "{algorithm}-{standard}"',  # Subresource Integrity
                 f'{{"h": "{escaped}"}}', f'{{"h": "{both}"}}', f'"a\\n{url_safe_b64}\\n"'):
        assert stated(text.encode()) == algorithm, text
    assert stated(f"?md5={quote(standard, safe='')}".encode()) == algorithm
    if len(digest) >= 16:  # unpadded base64, as JWT-style encoders write it
        assert stated(b"sum=" + base64.urlsafe_b64encode(digest).rstrip(b"=")) == algorithm


def test_crc32c_is_found_where_it_is_written_as_base64() -> None:
    value = crc32c(DATA).to_bytes(4, "big")
    assert stated(b'"crc32c": "' + base64.b64encode(value) + b'"') == "crc32c"
    assert stated(value.hex().encode()) is None  # hex CRC-32C: not looked for (see the docs)


def test_dropbox_content_hash_is_found() -> None:
    # the SHA-256 of the SHA-256s of the 4 MB blocks, in the Dropbox-API-Arg header's JSON
    big = DATA * 500  # 9.5 MB: three blocks
    blocks = [big[i : i + (4 << 20)] for i in range(0, len(big), 4 << 20)]
    content_hash = hashlib.sha256(b"".join(hashlib.sha256(b).digest() for b in blocks)).hexdigest()
    arg = json.dumps({"path": "/Photos/me.jpg", "mode": "add", "content_hash": content_hash})
    assert stated(arg.encode(), data=big) == "Dropbox content_hash"


def test_other_digests_and_plain_words_are_not_taken_for_one() -> None:
    other = hashlib.sha256(b"another photo").hexdigest().encode()
    words = b"upload avatar camera filename form-data image/jpeg 2026-12-06 deadbeef"
    assert stated(other + b" " + words) is None
    assert stated(hashlib.sha256(DATA).hexdigest().encode() + b"00") is None
    assert not digest_tokens([b"upload avatar camera filename " * 1000])


def test_ordinary_text_and_binary_beside_a_large_photo_cost_little() -> None:
    # CRC-32C in pure Python would take seconds over 20 MB: hex tokens never ask for it
    big = b"\xff" * 20_000_000
    noise = np.random.default_rng(0).integers(0, 256, 2_000_000, dtype=np.uint8).tobytes()
    headers = [b"_ga=GA1.1.12345678.1700000000", b"1a2b3c4d", b"20261206", noise]
    started = time.perf_counter()
    tokens = digest_tokens(headers)
    assert Digests(big).stated_in(tokens) is None
    assert time.perf_counter() - started < 1.5
