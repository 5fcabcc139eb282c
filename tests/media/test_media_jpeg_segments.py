import io
import time

import numpy as np
import pytest
from _media_builders import encoded, gradient, segment, thumbnail_jpeg, with_segments
from PIL import Image

from grasp_guard.media.jpeg_segments import (
    COM,
    MAX_PAYLOAD,
    MIN_PADDING,
    Segment,
    comment_padding,
    find_embedded_jpegs,
    is_padding,
    split_header,
    strip_metadata,
)


def test_split_header_lists_segments_until_the_scan() -> None:
    jpeg = with_segments(encoded(gradient(), "JPEG", comment=b"hi"), segment(0xE5, b"app5"))
    segments, sos = split_header(jpeg)
    markers = [s.marker for s in segments]
    assert markers[:2] == [0xE0, 0xE5]
    assert COM in markers and 0xDB in markers and 0xC0 in markers
    assert jpeg[sos : sos + 2] == b"\xff\xda"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG",
        b"\xff\xd8",
        b"\xff\xd8\xff\xe0\x00",
        b"\xff\xd8\xff\xe0\x00\x40abc",
        b"\xff\xd8\x00\x00",
    ],
)
def test_split_header_rejects_malformed_headers(data: bytes) -> None:
    with pytest.raises(ValueError):
        split_header(data)


def test_strip_metadata_keeps_only_coding_segments() -> None:
    jpeg = encoded(gradient(), "JPEG", comment=b"hi", icc_profile=b"x" * 50)
    stream = strip_metadata(jpeg)
    rebuilt = b"\xff\xd8" + stream
    segments, _ = split_header(rebuilt)
    assert not any(s.is_metadata for s in segments)
    a = np.asarray(Image.open(io.BytesIO(jpeg)))
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(rebuilt))), a)


@pytest.mark.parametrize(
    "n",
    [
        0,
        4,
        5,
        23,
        24,
        100,
        MAX_PAYLOAD + 4,
        MAX_PAYLOAD + 5,
        MAX_PAYLOAD + 7,
        MAX_PAYLOAD + 8,
        3 * (MAX_PAYLOAD + 4) + 2,
    ],
)
def test_comment_padding_has_the_exact_length_and_parses(n: int) -> None:
    padding = comment_padding(n)
    assert len(padding) == n
    if n:
        segments, _ = split_header(b"\xff\xd8" + padding + b"\xff\xda")
        assert all(s.marker == COM and is_padding(s.payload) for s in segments)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_comment_padding_refuses_lengths_below_a_segment(n: int) -> None:
    with pytest.raises(ValueError):
        comment_padding(n)


@pytest.mark.parametrize(
    ("payload", "padding"),
    [
        (b"", True),
        (b"grasp", True),
        (b"grasp-guard padding\x00\x00\x00", True),
        (b"hello", False),
        (b"grasp-guard padding\x00x", False),
    ],
)
def test_is_padding(payload: bytes, padding: bool) -> None:
    assert is_padding(payload) is padding


def test_find_embedded_jpegs_finds_whole_images_and_skips_noise() -> None:
    thumb = thumbnail_jpeg()
    blob = b"\x00" * 10 + b"\xff\xd8\xff junk" + b"\x00" * 5 + thumb + b"tail"
    found = find_embedded_jpegs(blob)
    assert found == [(blob.index(thumb), blob.index(thumb) + len(thumb))]
    assert find_embedded_jpegs(blob, skip=found[0]) == []


def test_a_preview_with_stray_bytes_between_its_segments_is_found_as_libjpeg_decodes_it() -> None:
    thumb = thumbnail_jpeg()
    after_app0 = 2 + 2 + int.from_bytes(thumb[4:6], "big")
    odd = thumb[:after_app0] + b"\x00" + thumb[after_app0:]
    Image.open(io.BytesIO(odd)).load()  # libjpeg: "extraneous bytes before marker", decoded
    blob = b"maker note " + odd + b" more"
    assert find_embedded_jpegs(blob) == [(11, 11 + len(odd))]
    too_many = thumb[:after_app0] + b"\x00" * 17 + thumb[after_app0:]
    assert find_embedded_jpegs(b"maker note " + too_many) == []


def test_a_chain_of_tiny_segments_each_holding_a_start_is_one_bounded_walk_each() -> None:
    # each APP0 holds FF D8 FF: every candidate used to walk the whole chain (4x per doubling)
    blob = b"\xff\xd8" + b"\xff\xe0\x00\x05\xff\xd8\xff" * 20_000
    started = time.perf_counter()
    found = find_embedded_jpegs(blob)
    assert time.perf_counter() - started < 2.0
    assert found == [(0, len(blob))]  # past the walk's bound: taken for an image, to the end


def test_segment_payload_limit() -> None:
    with pytest.raises(ValueError):
        Segment(COM, bytes(MAX_PAYLOAD + 1)).to_bytes()
    assert len(Segment(COM, bytes(MAX_PAYLOAD)).to_bytes()) == MAX_PAYLOAD + MIN_PADDING


@pytest.mark.parametrize("first", [b"\x00", b"\xbc"])
def test_a_preview_whose_first_byte_is_wrong_is_found(first: bytes) -> None:
    # Minolta writes its maker-note previews so; exiv2 and ExifTool fix the byte on reading
    preview = first + thumbnail_jpeg()[1:]
    blob = b"MLT0" + preview + b"tail"
    assert find_embedded_jpegs(blob) == [(4, 4 + len(preview))]
    assert find_embedded_jpegs(b"\x00\xd8\xff\x00 not a header" + blob[4:8]) == []
