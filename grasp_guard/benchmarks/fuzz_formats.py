"""Where the length and dimension fields of an image file lie, for structure-aware fuzzing.

Each walker reads a container the way its decoder does (PNG chunks, JPEG segments, RIFF
chunks, ISO-BMFF boxes, GIF's screen and image descriptors) and names the byte ranges that
declare a length or a size, so that a fuzzer can make them lie. Walkers stop quietly at the
first thing they cannot follow: their input is often already broken.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from grasp_guard.media.sniff import sniff_format

ByteOrder = Literal["big", "little"]

# ISO-BMFF boxes that hold boxes, with the bytes before their first child (a full box's
# version and flags; iinf and iref are left out, their children follow a count).
_BMFF_CONTAINERS = {b"meta": 4, b"iprp": 0, b"ipco": 0, b"dinf": 0, b"moov": 0, b"trak": 0}
# JPEG start-of-frame markers (C4 DHT, C8 JPG and CC DAC are not frames).
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass(frozen=True)
class Field:
    """An unsigned integer stored at ``offset`` in ``size`` bytes.

    ``crc`` is the span ``(start, end)`` a PNG CRC covers, written just after it, when the
    field lies in a PNG chunk: rewriting the CRC lets a lie get past the CRC check.
    """

    offset: int
    size: int
    byteorder: ByteOrder
    crc: tuple[int, int] | None = None

    def read(self, data: bytes | bytearray) -> int:
        return int.from_bytes(data[self.offset:self.offset + self.size], self.byteorder)

    def write(self, data: bytearray, value: int) -> None:
        """Store ``value`` (reduced to the field's width), then the chunk's CRC if any."""
        value %= 1 << (8 * self.size)
        data[self.offset:self.offset + self.size] = value.to_bytes(self.size, self.byteorder)
        if self.crc is not None:
            start, end = self.crc
            data[end:end + 4] = zlib.crc32(bytes(data[start:end])).to_bytes(4, "big")


@dataclass(frozen=True)
class Layout:
    """The fields of one file that declare lengths, and those that declare pixel sizes."""

    lengths: tuple[Field, ...]
    dimensions: tuple[Field, ...]


def layout(data: bytes) -> Layout:
    """The length and dimension fields of ``data``, by its sniffed format (none if unknown)."""
    walkers = {"PNG": _png, "JPEG": _jpeg, "WEBP": _webp, "HEIF": _bmff, "AVIF": _bmff,
               "GIF": _gif}
    walker = walkers.get(sniff_format(data) or "")
    if walker is None:
        return Layout((), ())
    lengths: list[Field] = []
    dimensions: list[Field] = []
    for kind, f in walker(data):
        (lengths if kind == "length" else dimensions).append(f)
    return Layout(tuple(lengths), tuple(dimensions))


Found = Iterator[tuple[Literal["length", "dimension"], Field]]


def _png(data: bytes) -> Found:
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        end = pos + 8 + length
        if end + 4 > len(data):
            return
        yield "length", Field(pos, 4, "big")
        if data[pos + 4:pos + 8] == b"IHDR" and length >= 8:
            for at in (pos + 8, pos + 12):
                yield "dimension", Field(at, 4, "big", crc=(pos + 4, end))
        pos = end + 4


def _jpeg(data: bytes) -> Found:
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length
            pos += 2
            continue
        yield "length", Field(pos + 2, 2, "big")
        if marker in _JPEG_FRAMES and pos + 9 <= len(data):
            yield "dimension", Field(pos + 5, 2, "big")  # lines
            yield "dimension", Field(pos + 7, 2, "big")  # samples per line
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")


def _webp(data: bytes) -> Found:
    yield "length", Field(4, 4, "little")
    pos = 12
    while pos + 8 <= len(data):
        fourcc = data[pos:pos + 4]
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        yield "length", Field(pos + 4, 4, "little")
        body = pos + 8
        if fourcc == b"VP8X" and body + 10 <= len(data):
            yield "dimension", Field(body + 4, 3, "little")  # canvas width - 1
            yield "dimension", Field(body + 7, 3, "little")  # canvas height - 1
        elif fourcc == b"VP8 " and body + 10 <= len(data):
            yield "dimension", Field(body + 6, 2, "little")  # 14-bit width, 2-bit scale
            yield "dimension", Field(body + 8, 2, "little")
        elif fourcc == b"VP8L" and body + 5 <= len(data):
            yield "dimension", Field(body + 1, 4, "little")  # 14-bit width - 1, height - 1
        pos = body + size + (size & 1)


def _bmff(data: bytes, start: int = 0, end: int | None = None) -> Found:
    pos, end = start, len(data) if end is None else end
    while pos + 8 <= end:
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if size < 8 or pos + size > end:
            return
        yield "length", Field(pos, 4, "big")
        if kind == b"ispe" and size >= 20:
            yield "dimension", Field(pos + 12, 4, "big")
            yield "dimension", Field(pos + 16, 4, "big")
        elif kind in _BMFF_CONTAINERS:
            yield from _bmff(data, pos + 8 + _BMFF_CONTAINERS[kind], pos + size)
        pos += size


def _gif(data: bytes) -> Found:
    if len(data) < 13:
        return
    yield "dimension", Field(6, 2, "little")
    yield "dimension", Field(8, 2, "little")
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while pos < len(data) and data[pos] == 0x21:  # extensions: label, then sub-blocks
        pos += 2
        while pos < len(data) and data[pos]:
            yield "length", Field(pos, 1, "little")
            pos += data[pos] + 1
        pos += 1
    if pos + 10 <= len(data) and data[pos] == 0x2C:  # the first image descriptor
        yield "dimension", Field(pos + 5, 2, "little")
        yield "dimension", Field(pos + 7, 2, "little")
