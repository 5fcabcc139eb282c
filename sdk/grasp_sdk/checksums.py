"""Body checksums as upload headers carry them (base64 of the big-endian digest).

``zlib`` and ``hashlib`` cover CRC-32, MD5 and SHA; CRC-32C (Castagnoli, used by S3 and
Google Cloud Storage) and CRC-64/NVME (S3) have no stdlib implementation, so they are
computed here with a byte-wise table (about 0.1 µs a byte: run big bodies in a thread).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable
from functools import cache


@cache
def _reflected_table(poly: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


def _reflected_crc(data: bytes, poly: int, mask: int) -> int:
    table = _reflected_table(poly)
    crc = mask
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ mask


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli): ``crc32c(b"123456789") == 0xE3069283``."""
    return _reflected_crc(data, 0x82F63B78, 0xFFFFFFFF)


def crc64nvme(data: bytes) -> int:
    """CRC-64/NVME: ``crc64nvme(b"123456789") == 0xAE8B14860A799888``."""
    return _reflected_crc(data, 0x9A6C9329AC4BC9B5, 0xFFFFFFFFFFFFFFFF)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


#: Algorithm name (as in ``x-amz-checksum-<name>`` and ``x-goog-hash: <name>=``) →
#: base64 of the digest of a body.
DIGESTS: dict[str, Callable[[bytes], str]] = {
    "crc32": lambda d: _b64(zlib.crc32(d).to_bytes(4, "big")),
    "crc32c": lambda d: _b64(crc32c(d).to_bytes(4, "big")),
    "crc64nvme": lambda d: _b64(crc64nvme(d).to_bytes(8, "big")),
    "md5": lambda d: _b64(hashlib.md5(d).digest()),
    "sha1": lambda d: _b64(hashlib.sha1(d).digest()),
    "sha256": lambda d: _b64(hashlib.sha256(d).digest()),
}
