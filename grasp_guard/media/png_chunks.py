"""PNG chunk streams: read with CRC checks, write, and pad with a private chunk."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHUNK_OVERHEAD = 12  # length, type, CRC
# Ancillary, private, safe-to-copy: decoders skip it, editors may keep it.
PADDING_TYPE = b"grPd"


@dataclass(frozen=True)
class Chunk:
    """One chunk: its 4-letter type and its data."""

    type: bytes
    data: bytes

    @property
    def safe_to_copy(self) -> bool:
        """Bit 5 of the fourth letter: may be kept by an editor that changed the pixels."""
        return bool(self.type[3] & 0x20)

    def to_bytes(self) -> bytes:
        body = self.type + self.data
        return struct.pack(">I", len(self.data)) + body + struct.pack(">I", zlib.crc32(body))


def read_chunks(data: bytes) -> list[Chunk]:
    """Every chunk up to and including IEND, CRCs checked.

    Raises:
        ValueError: no PNG signature, a truncated or corrupt chunk, or no IEND.
    """
    if not data.startswith(SIGNATURE):
        raise ValueError("missing PNG signature")
    chunks: list[Chunk] = []
    pos = len(SIGNATURE)
    while True:
        if pos + CHUNK_OVERHEAD > len(data):
            raise ValueError("PNG truncated before IEND")
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 8 + length
        if end + 4 > len(data):
            raise ValueError(f"PNG chunk {kind!r} truncated")
        body = data[pos + 4 : end]
        if zlib.crc32(body) != struct.unpack_from(">I", data, end)[0]:
            raise ValueError(f"PNG chunk {kind!r} has a bad CRC")
        chunks.append(Chunk(kind, data[pos + 8 : end]))
        pos = end + 4
        if kind == b"IEND":
            return chunks


def padding_chunk(n: int) -> bytes:
    """A ``grPd`` chunk of exactly ``n`` bytes on the wire (``n`` ≥ 12)."""
    if n < CHUNK_OVERHEAD:
        raise ValueError(f"PNG padding must be at least {CHUNK_OVERHEAD} bytes, got {n}")
    return Chunk(PADDING_TYPE, bytes(n - CHUNK_OVERHEAD)).to_bytes()
