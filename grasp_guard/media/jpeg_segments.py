"""JPEG marker segments: split a file's header, splice metadata, pad with COM segments."""

from __future__ import annotations

import re
from dataclasses import dataclass

SOI = 0xD8
EOI = 0xD9
SOS = 0xDA
COM = 0xFE
APP0 = 0xE0
APP15 = 0xEF
MAX_PAYLOAD = 65533  # a segment's 16-bit length field counts itself
MIN_PADDING = 4  # FF FE + a length of 2: an empty comment
PADDING_TAG = b"grasp-guard padding\x00"

_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
_FRAME_MARKERS = frozenset(
    {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)}
)


@dataclass(frozen=True)
class Segment:
    """One marker segment: the marker byte (``0xE1`` for APP1) and its payload."""

    marker: int
    payload: bytes

    @property
    def is_metadata(self) -> bool:
        """APPn and COM segments: what a re-encode carries over from the source."""
        return APP0 <= self.marker <= APP15 or self.marker == COM

    def to_bytes(self) -> bytes:
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"segment payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")
        return (
            bytes((0xFF, self.marker)) + (len(self.payload) + 2).to_bytes(2, "big") + self.payload
        )


class HeaderTooLong(ValueError):
    """A JPEG header of more segments than the walk was allowed."""


# Segments an embedded JPEG's header may have before the first scan (cameras write a few
# dozen): a blob of tiny segments each holding another SOI would otherwise cost a walk of
# the whole chain per candidate.
MAX_EMBEDDED_SEGMENTS = 256
# Stray bytes between an embedded JPEG's header segments skipped in all (its first segment
# must follow SOI at once): a preview made to fail a strict parse still counts as one.
_EXTRANEOUS = 16
# Where an embedded JPEG may start: SOI and a marker; or, SOI's first byte wrong (Minolta
# writes its maker-note previews so, and exiv2 and ExifTool fix it on reading), SOI and a
# marker a header opens with (tables, APPn, a frame).
_EMBEDDED_START = re.compile(rb"\xff\xd8\xff|.\xd8\xff[\xc0-\xcf\xdb\xe0-\xef]", re.DOTALL)


def split_header(data: bytes, start: int = 0, max_segments: int | None = None,
                 extraneous: int = 0) -> tuple[list[Segment], int]:
    """The segments between SOI and the first SOS, and the offset of that SOS marker.

    Args:
        extraneous: how many stray bytes between one segment and the next marker to skip
            in all, as libjpeg does (with a warning) when it decodes such a file.

    Raises:
        HeaderTooLong: more than ``max_segments`` segments (when given).
        ValueError: not a JPEG, or the header is truncated or malformed.
    """
    if data[start : start + 2] != b"\xff\xd8":
        raise ValueError("missing JPEG SOI marker")
    return _segments(data, start + 2, max_segments, extraneous)


def _segments(data: bytes, pos: int, max_segments: int | None,
              extraneous: int) -> tuple[list[Segment], int]:
    """:func:`split_header` from the first marker after SOI, at ``pos``."""
    segments: list[Segment] = []
    while True:
        if segments and pos < len(data) and data[pos] != 0xFF:
            skipped = data.find(b"\xff", pos, pos + extraneous + 1) - pos
            if skipped > 0:
                extraneous -= skipped
                pos += skipped
        if pos >= len(data) or data[pos] != 0xFF:
            raise ValueError(f"expected a JPEG marker at offset {pos}")
        marker_pos = pos
        while pos < len(data) and data[pos] == 0xFF:  # fill bytes may precede a marker
            pos += 1
        if pos >= len(data):
            raise ValueError("JPEG header truncated")
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (SOI, EOI):
            raise ValueError(f"unexpected JPEG marker 0x{marker:02X} before the first scan")
        if marker == SOS:
            return segments, marker_pos
        if pos + 2 > len(data):
            raise ValueError("JPEG header truncated")
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > len(data):
            raise ValueError(f"JPEG segment 0x{marker:02X} has a bad length {length}")
        segments.append(Segment(marker, data[pos + 2 : pos + length]))
        if max_segments is not None and len(segments) > max_segments:
            raise HeaderTooLong(f"a JPEG header of over {max_segments} segments")
        pos += length


def embedded_jpeg_end(data: bytes, start: int) -> int | None:
    """End offset of a JPEG image that starts at ``start`` inside a blob, or None.

    SOI's first byte may be wrong (as in Minolta's previews: readers fix it). The candidate
    must parse as a header with a frame (SOF) segment (a few stray bytes between its
    segments skipped, as libjpeg decodes it anyway); it ends after the next EOI marker, or
    at the end of the blob when it was cut short. One whose header runs past
    :data:`MAX_EMBEDDED_SEGMENTS` is taken for an image to the blob's end: dropping too much
    keeps no original pixels, and each candidate costs a bounded walk.
    """
    if data[start + 1 : start + 2] != b"\xd8":
        return None
    try:
        segments, sos = _segments(data, start + 2, MAX_EMBEDDED_SEGMENTS, _EXTRANEOUS)
    except HeaderTooLong:
        return len(data)
    except ValueError:
        return None
    if not any(s.marker in _FRAME_MARKERS for s in segments):
        return None
    eoi = data.find(b"\xff\xd9", sos)
    return len(data) if eoi < 0 else eoi + 2


def find_embedded_jpegs(data: bytes, skip: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """(start, end) of each complete-looking JPEG image embedded in ``data``.

    Args:
        data: any blob (an EXIF block, an APP segment payload).
        skip: a (start, end) range not to search (a thumbnail already accounted for).
    """
    found: list[tuple[int, int]] = []
    match = _EMBEDDED_START.search(data)
    while match:
        pos = match.start()
        if skip is not None and skip[0] <= pos < skip[1]:
            match = _EMBEDDED_START.search(data, skip[1])
            continue
        end = embedded_jpeg_end(data, pos)
        if end is None:
            match = _EMBEDDED_START.search(data, pos + 1)
            continue
        found.append((pos, end))
        match = _EMBEDDED_START.search(data, end)
    return found


def strip_metadata(encoded: bytes) -> bytes:
    """Tables, frame header and scans of a freshly encoded JPEG, without SOI and APPn/COM.

    Pillow writes its own JFIF APP0 (and Adobe APP14 for RGB); the source's segments replace
    them, so only the coding segments of the new stream are kept.
    """
    segments, sos = split_header(encoded)
    coding = b"".join(s.to_bytes() for s in segments if not s.is_metadata)
    return coding + encoded[sos:]


def comment_padding(n: int) -> bytes:
    """COM segments totalling exactly ``n`` bytes (``n`` = 0 or at least ``MIN_PADDING``).

    Each segment starts with ``PADDING_TAG`` where it has room, so a later re-encode of the
    output recognises and drops it instead of carrying it as a comment.
    """
    if n == 0:
        return b""
    if n < MIN_PADDING:
        raise ValueError(f"JPEG padding must be 0 or at least {MIN_PADDING} bytes, got {n}")
    out = bytearray()
    left = n
    max_segment = MAX_PAYLOAD + 4
    while left:
        size = min(left, max_segment)
        if 0 < left - size < MIN_PADDING:
            size -= MIN_PADDING - (left - size)
        body_len = size - 4
        tag = PADDING_TAG[:body_len]
        out += Segment(COM, tag + bytes(body_len - len(tag))).to_bytes()
        left -= size
    return bytes(out)


def is_padding(payload: bytes) -> bool:
    """Whether a COM payload is padding written by :func:`comment_padding`."""
    tag_len = len(PADDING_TAG)
    return PADDING_TAG.startswith(payload[:tag_len]) and not any(payload[tag_len:])
