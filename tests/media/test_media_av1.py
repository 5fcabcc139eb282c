"""The frame size an AV1 sequence header declares, and AVIF's pixel limit checked on it."""

from __future__ import annotations

import struct

import pytest
from _media_builders import encoded, gradient
from PIL import features

from grasp_guard.errors import ImageTooLargeError, InvalidImageError
from grasp_guard.media import decode
from grasp_guard.media.av1 import frame_size
from grasp_guard.media.avif import frame_sizes


def _bits(*fields: tuple[int, int]) -> bytes:
    """(value, width) fields, big-endian, zero-padded to a byte."""
    text = "".join(format(value, f"0{width}b") for value, width in fields)
    text += "0" * (-len(text) % 8)
    return int(text, 2).to_bytes(len(text) // 8, "big")


def _obu(kind: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return bytes([kind << 3 | 0b10, len(payload)]) + payload


def test_a_full_sequence_header_with_timing_and_operating_points() -> None:
    operating_point = [(0, 12), (9, 5), (0, 1), (1, 1), (3, 5), (4, 5), (0, 1), (1, 1), (2, 4)]
    header = _bits(
        (0, 3), (0, 1), (0, 1),  # profile, still_picture, reduced header
        (1, 1), (1000, 32), (30000, 32), (1, 1), (1, 1),  # timing info, equal interval, uvlc 0
        (1, 1), (4, 5), (1, 32), (9, 5), (9, 5),  # decoder model info: 5-bit buffer delays
        (1, 1), (1, 5),  # initial display delays; two operating points
        *operating_point, *operating_point,
        (11, 4), (10, 4), (1919, 12), (1079, 11),  # frame width/height bits, then sizes - 1
    )
    assert frame_size(_obu(2, b"") + _obu(1, header)) == (1920, 1080)  # after a delimiter
    with pytest.raises(ValueError, match="truncated"):
        frame_size(_obu(1, header[:20]))
    assert frame_size(_obu(2, b"")) is None


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF support")
def test_the_avif_pixel_limit_holds_against_a_lying_ispe() -> None:
    source = encoded(gradient(160, 200), "AVIF", quality=60)
    assert frame_sizes(source) == [(200, 160)]
    at = source.index(b"ispe")  # the container now says 16x16; the AV1 frame is 200x160
    lying = source[: at + 8] + struct.pack(">II", 16, 16) + source[at + 16 :]
    with pytest.raises(ImageTooLargeError, match="200×160"):
        decode(lying, max_pixels=16 * 16 * 4)


def _split_first_extent(avif: bytes, at: int = 3) -> bytes:
    """The file with its one-extent items stored in two extents, the first ``at`` bytes long
    (iloc version 0, as libavif writes; the grown iloc box shifts the data that follows)."""
    meta = avif.index(b"meta") - 4
    iloc = avif.index(b"iloc", meta) - 4
    size = struct.unpack(">I", avif[iloc : iloc + 4])[0]
    p = iloc + 12
    sizes, base_size = avif[p], avif[p + 1] >> 4
    offset_size, length_size = sizes >> 4, sizes & 15
    assert avif[iloc + 8] == 0 and offset_size == length_size == 4 and base_size == 0
    count = struct.unpack(">H", avif[p + 2 : p + 4])[0]
    out, p = bytearray(avif[iloc + 8 : p + 4]), p + 4
    grown = 8 * count  # each split adds one extent of 8 bytes
    for _ in range(count):
        item, ref, n = struct.unpack(">HHH", avif[p : p + 6])
        extents = [struct.unpack(">II", avif[p + 6 + 8 * i : p + 14 + 8 * i]) for i in range(n)]
        p += 6 + 8 * n
        (offset, length), = extents
        offset += grown
        out += struct.pack(">HHH", item, ref, 2) + struct.pack(">IIII", offset, at, offset + at,
                                                                 length - at)
    box = struct.pack(">I4s", 8 + len(out), b"iloc") + out
    meta_size = struct.unpack(">I", avif[meta : meta + 4])[0] + grown
    head = avif[:meta] + struct.pack(">I", meta_size) + avif[meta + 4 : iloc]
    return head + box + avif[iloc + size :]


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF support")
def test_the_limit_reads_the_header_across_extents_and_refuses_an_item_without_one() -> None:
    source = encoded(gradient(160, 200), "AVIF", quality=60)
    split = _split_first_extent(source)
    at = split.index(b"ispe")
    lying = split[: at + 8] + struct.pack(">II", 16, 16) + split[at + 16 :]
    assert frame_sizes(lying) == [(200, 160)]  # the header is cut by the first extent
    with pytest.raises(ImageTooLargeError):
        decode(lying, max_pixels=16 * 16 * 4)
    start = source.index(b"mdat") + 4  # no sequence header left in the item's data
    with pytest.raises(InvalidImageError, match="no readable frame size"):
        frame_sizes(source[:start] + bytes(8) + source[start + 8 :])
