"""Checksum header values against reference vectors and the stdlib."""

from __future__ import annotations

import base64
import hashlib
import zlib

import pytest
from grasp_sdk.checksums import DIGESTS, crc32c, crc64nvme


@pytest.mark.parametrize(("func", "data", "expected"), [
    (crc32c, b"123456789", 0xE3069283),
    (crc32c, b"", 0),
    (crc32c, bytes(32), 0x8A9136AA),  # RFC 3720 B.4: 32 bytes of zeros
    (crc32c, bytes(range(32)), 0x46DD794E),  # RFC 3720 B.4: incrementing bytes
    (crc64nvme, b"123456789", 0xAE8B14860A799888),
])
def test_crc_vectors(func, data: bytes, expected: int) -> None:
    assert func(data) == expected


def test_digests_match_stdlib() -> None:
    body = bytes(range(256)) * 3
    assert DIGESTS["md5"](body) == base64.b64encode(hashlib.md5(body).digest()).decode()
    assert DIGESTS["sha256"](body) == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert DIGESTS["crc32"](body) == base64.b64encode(
        zlib.crc32(body).to_bytes(4, "big")).decode()
    assert base64.b64decode(DIGESTS["crc32c"](b"123456789")) == bytes.fromhex("e3069283")
