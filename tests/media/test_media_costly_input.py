"""Metadata made to cost time or memory: each is read within a bound, or dropped whole."""

import io
import struct
import time

import pytest
from _media_builders import gradient, xmp_packet
from PIL import Image

from grasp_guard.media import decode, exif, xmp

# Generous on a loaded 2-core machine: unbounded, these took tens of seconds.
FAST_S = 5.0


def _timed(call):
    start = time.perf_counter()
    result = call()
    assert time.perf_counter() - start < FAST_S
    return result


def test_overlapping_directories_of_many_entries_make_the_block_unreadable() -> None:
    # IFD0 of 65535 entries whose SubIFDs link 63 directories inside it: 4 M entries unbounded
    n, links = 65535, [10 + 12 * k for k in range(1, 64)]
    at = 10 + 12 * n + 4
    first = struct.pack("<HHII", 0x014A, 4, len(links), at)
    block = (b"II*\x00" + struct.pack("<IH", 8, n) + first + struct.pack("<HHII", 0xFFFF, 1, 1, 0) * (n - 1)
             + bytes(4) + b"".join(struct.pack("<I", link) for link in links))
    with pytest.raises(exif.ExifError, match="directory entries"):
        _timed(lambda: exif.parse(block))


def test_text_values_overlapping_many_times_make_the_block_unreadable() -> None:
    # 2000 ASCII entries, each a window of the same 60 KB of text
    text = b"a portrait " * 6000
    n = 2000
    start = 8 + 2 + 12 * n + 4
    entries = b"".join(struct.pack("<HHII", 0x010E, 2, len(text) - i, start + i) for i in range(n))
    block = b"II*\x00" + struct.pack("<IH", 8, n) + entries + bytes(4) + text
    with pytest.raises(exif.ExifError, match="overlapping text"):
        _timed(lambda: exif.parse(block))


def test_a_large_packet_with_many_image_names_is_dropped_not_scanned_for_long() -> None:
    binds = b"".join(b' xmlns:p%d="http://ns.google.com/photos/1.0/camera/"' % i for i in range(12))
    names = b"".join(b' p%d:MicroVideo="1" p%d:MotionPhoto="1"' % (i, i) for i in range(12))
    packet = xmp_packet(binds + names + b' dc:x="' + b"  a  \t " * 600_000 + b'"')
    cleaned, removed = _timed(lambda: xmp.sanitize(packet))
    assert cleaned == b"" and "too costly to clean" in removed[0]
    small = xmp_packet(binds + names)  # the same names in a packet of ordinary size: cleaned
    assert b"MicroVideo" not in xmp.sanitize(small)[0] and xmp.sanitize(small)[0]


def test_a_webp_of_such_a_packet_decodes_in_time() -> None:
    binds = b"".join(b' xmlns:p%d="http://ns.google.com/photos/1.0/image/"' % i for i in range(15))
    names = b"".join(b' p%d:Data="1"' % i for i in range(15))
    out = io.BytesIO()
    Image.fromarray(gradient()).save(out, "WEBP", xmp=xmp_packet(binds + names + b' dc:x="' + b" " * (3 << 20) + b'"'))
    image = _timed(lambda: decode(out.getvalue()))
    assert any("too costly to clean" in note for note in image.notes)
