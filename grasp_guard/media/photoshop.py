"""Photoshop image resource blocks (JPEG APP13, PNG raw profiles): their thumbnails removed.

A resource stream is a run of ``8BIM`` records; records 0x0409 and 0x040C hold a JPEG
thumbnail of the photo, and 0x0422, 0x0423 and 0x0424 copies of its EXIF and XMP (each may
hold a thumbnail of its own; the photo's own EXIF and XMP carry that metadata). A stream over 64 KB is split across consecutive APP13 segments,
each starting with ``Photoshop 3.0``: readers join them, and the JPEG codec does too.
"""

from __future__ import annotations

import struct

PHOTOSHOP = b"Photoshop 3.0\x00"
_THUMBNAILS = frozenset({0x0409, 0x040C, 0x0422, 0x0423, 0x0424})
_SIGNATURES = frozenset({b"8BIM", b"MeSa", b"PHUT", b"AgHg", b"DCSR"})


def without_thumbnails(resources: bytes) -> tuple[bytes, int] | None:
    """The resource stream without its thumbnail records, and how many went; None when the
    stream cannot be walked (a record that runs past its end, an unknown signature)."""
    out = bytearray()
    pos, removed = 0, 0
    try:
        while pos + 12 <= len(resources):
            if resources[pos : pos + 4] not in _SIGNATURES:
                return None
            name_len = resources[pos + 6]
            size_pos = pos + 6 + name_len + 1 + ((name_len + 1) & 1)
            (size,) = struct.unpack_from(">I", resources, size_pos)
            end = size_pos + 4 + size + (size & 1)
            if end > len(resources) + (size & 1):
                return None
            if struct.unpack_from(">H", resources, pos + 4)[0] in _THUMBNAILS:
                removed += 1
            else:
                out += resources[pos:end]
            pos = end
    except (struct.error, IndexError):
        return None
    return bytes(out + resources[pos:]), removed


def split(resources: bytes, max_payload: int) -> list[bytes]:
    """APP13 payloads of at most ``max_payload`` bytes carrying ``resources`` in turn."""
    room = max_payload - len(PHOTOSHOP)
    return [PHOTOSHOP + resources[i : i + room] for i in range(0, max(1, len(resources)), room)]
