import io
import struct
import time

import numpy as np
import piexif
import pytest
from _media_builders import exif_bytes, gradient, thumbnail_jpeg, tiff_block
from PIL import Image

from grasp_guard.media import exif


def _tiff(blob: bytes) -> bytes:
    return exif.split_prefix(blob)[1]


def _thumb_of(tiff: bytes) -> bytes:
    return piexif.load(exif.PREFIX + tiff)["thumbnail"]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_parse_reads_orientation_and_thumbnail(orientation: int) -> None:
    blob = exif_bytes(orientation, thumbnail_jpeg())
    thumb = piexif.load(blob)["thumbnail"]  # piexif stores it without its APP0
    tiff = _tiff(blob)
    layout = exif.parse(tiff)
    assert layout.orientation == orientation
    assert layout.thumbnail is not None and tiff[slice(*layout.thumbnail)] == thumb
    assert layout.previews == () and layout.strips == ()


@pytest.mark.parametrize(
    ("blob", "orientation"),
    [
        (b"", 1),
        (None, 1),
        (b"garbage", 1),
        (exif_bytes(3), 3),
        (_tiff(exif_bytes(8)), 8),
        (tiff_block(5, thumbnail_jpeg(), ">"), 5),
    ],
)
def test_read_orientation(blob: bytes | None, orientation: int) -> None:
    assert exif.read_orientation(blob) == orientation


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"II",
        b"XX*\x00\x08\x00\x00\x00",
        b"II\x2b\x00\x08\x00\x00\x00",
        b"II*\x00\xff\x00\x00\x00",
    ],
)
def test_parse_rejects_what_is_not_tiff(bad: bytes) -> None:
    with pytest.raises(exif.ExifError):
        exif.parse(bad)


def test_protect_regenerates_the_thumbnail_and_keeps_every_tag() -> None:
    tiff = _tiff(exif_bytes(6, thumbnail_jpeg((0, 200, 0))))
    original = _thumb_of(tiff)
    stored = np.zeros((48, 64, 3), np.uint8)
    stored[:] = (200, 0, 0)
    out = exif.protect(tiff, exif.parse(tiff), stored)
    before, after = piexif.load(exif.PREFIX + tiff), piexif.load(exif.PREFIX + out)
    for ifd in ("0th", "Exif", "GPS", "Interop"):
        assert after[ifd] == before[ifd], ifd
    assert {k: v for k, v in after["1st"].items() if k not in (513, 514)} == {
        k: v for k, v in before["1st"].items() if k not in (513, 514)
    }
    assert after["thumbnail"] != original and original not in out
    new = (
        np.asarray(Image.open(io.BytesIO(after["thumbnail"])).convert("RGB"))
        .reshape(-1, 3)
        .mean(axis=0)
    )
    assert new[0] > 150 and new[1] < 50  # red like the protected pixels, not green


def test_protect_leaves_bytes_before_the_thumbnail_identical() -> None:
    tiff = _tiff(exif_bytes(1, thumbnail_jpeg()))
    original = _thumb_of(tiff)
    start = tiff.index(original)
    out = exif.protect(tiff, exif.parse(tiff), gradient())
    layout = exif.parse(out)
    assert layout.thumbnail is not None and layout.thumbnail_entries is not None
    length_field = layout.thumbnail_entries[1].field
    changed = [i for i in range(start) if out[i] != tiff[i]]
    assert changed and all(length_field <= i < length_field + 4 for i in changed)


def test_protect_works_on_blocks_piexif_cannot_load() -> None:
    original = thumbnail_jpeg()
    tiff = tiff_block(8, original)
    with pytest.raises(ValueError):
        piexif.load(exif.PREFIX + tiff)
    out = exif.protect(tiff, exif.parse(tiff), gradient())
    assert original not in out
    layout = exif.parse(out)
    assert layout.orientation == 8
    assert layout.thumbnail is not None
    assert Image.open(io.BytesIO(out[slice(*layout.thumbnail)])).size == (16, 12)
    pillow_before, pillow_after = Image.Exif(), Image.Exif()
    pillow_before.load(exif.PREFIX + tiff)
    pillow_after.load(exif.PREFIX + out)
    assert dict(pillow_after) == dict(pillow_before)


def test_thumbnail_that_cannot_fit_is_unlinked() -> None:
    tiff = _tiff(exif_bytes(1, thumbnail_jpeg()))
    original = _thumb_of(tiff)
    max_len = len(tiff) - len(original) + 10  # no JPEG fits in 10 bytes
    out = exif.protect(tiff, exif.parse(tiff), gradient(), max_len=max_len)
    assert len(out) <= max_len
    assert original not in out
    layout = exif.parse(out)
    assert not layout.has_ifd1 and layout.thumbnail is None
    assert piexif.load(exif.PREFIX + out)["Exif"] == piexif.load(exif.PREFIX + tiff)["Exif"]


def test_maker_note_previews_are_blanked_in_place() -> None:
    preview = thumbnail_jpeg((10, 20, 30), size=(24, 16))
    note = b"Maker\x00\x01\x02" + preview + b"\x00end"
    tiff = _tiff(exif_bytes(1, None, maker_note=note))
    layout = exif.parse(tiff)
    assert len(layout.previews) == 1 and "preview" in " ".join(layout.notes())
    out = exif.protect(tiff, layout, gradient())
    assert len(out) == len(tiff) and preview not in out
    new_note = piexif.load(exif.PREFIX + out)["Exif"][piexif.ExifIFD.MakerNote]
    assert (
        new_note.startswith(b"Maker\x00\x01\x02")
        and new_note.endswith(b"\x00end")
        and len(new_note) == len(note)
    )


def test_block_without_thumbnail_is_returned_unchanged() -> None:
    tiff = _tiff(exif_bytes(3))
    assert exif.protect(tiff, exif.parse(tiff), gradient()) == tiff


def _with_entry(tiff: bytes, tag: int, *, count: int | None = None, value: int | None = None) -> bytes:
    """``tiff`` (little-endian, from ``tiff_block``) with IFD1's LONG entry ``tag`` changed."""
    at = tiff.index(tag.to_bytes(2, "little") + b"\x04\x00\x01\x00\x00\x00")
    out = bytearray(tiff)
    if count is not None:
        out[at + 4 : at + 8] = count.to_bytes(4, "little")
    if value is not None:
        out[at + 8 : at + 12] = value.to_bytes(4, "little")
    return bytes(out)


def test_a_thumbnail_entry_without_value_unlinks_the_directory() -> None:
    tiff = _with_entry(tiff_block(6, thumbnail_jpeg()), 0x0201, count=0)
    layout = exif.parse(tiff)
    assert layout.has_ifd1 and layout.thumbnail is None and layout.orientation == 6
    assert exif.read_orientation(tiff) == 6
    assert exif.parse(exif.protect(tiff, layout, gradient())).has_ifd1 is False


def test_a_thumbnail_length_short_of_its_image_leaves_none_of_it() -> None:
    thumb = thumbnail_jpeg()
    header = thumb.index(b"\xff\xda")  # the length stops at the scan
    tiff = _with_entry(tiff_block(1, thumb), 0x0202, value=header)
    layout = exif.parse(tiff)
    assert layout.thumbnail is not None and layout.thumbnail[1] - layout.thumbnail[0] == len(thumb)
    out = exif.protect(tiff, layout, gradient())
    assert thumb[header:] not in out


def test_without_pixels_the_thumbnail_goes() -> None:
    tiff = tiff_block(1, thumbnail_jpeg())
    out = exif.protect(tiff, exif.parse(tiff), None)
    assert not exif.parse(out).has_ifd1 and thumbnail_jpeg()[100:] not in out


def _raw_tiff(directories: list[dict[int, tuple[int, list[int]]]], links: dict[int, int]) -> bytes:
    """A little-endian TIFF block of ``directories`` (tag → (type, values)), each followed by a
    48-byte raw RGB strip of byte ``0x40 + index`` that its ``0x0111/0x0117`` entries may name.

    ``links`` maps a directory's index to the index its next-IFD pointer names (0 ends a chain).
    Values are written in place of the placeholders ``-1 - i`` (offset of directory ``i``) and
    ``-100 - i`` (offset of directory ``i``'s strip).
    """
    sizes = [2 + 12 * len(d) + 4 + 4 * sum(len(v) for _, v in d.values()) for d in directories]
    starts, at = [], 8
    for size in sizes:
        starts.append(at)
        at += size + 48
    strip = [s + size for s, size in zip(starts, sizes, strict=True)]

    def resolve(v: int) -> int:
        return starts[-1 - v] if -100 < v < 0 else strip[-100 - v] if v <= -100 else v

    out = bytearray(b"II*\x00" + (8).to_bytes(4, "little"))
    for i, d in enumerate(directories):
        extra_at = starts[i] + 2 + 12 * len(d) + 4
        body, extra = bytearray(len(d).to_bytes(2, "little")), bytearray()
        for tag, (kind, values) in sorted(d.items()):
            values = [resolve(v) for v in values]
            body += tag.to_bytes(2, "little") + kind.to_bytes(2, "little")
            body += len(values).to_bytes(4, "little")
            if len(values) == 1:
                body += values[0].to_bytes(4, "little")
            else:
                body += (extra_at + len(extra)).to_bytes(4, "little")
                extra += b"".join(v.to_bytes(4, "little") for v in values)
        nxt = starts[links[i]] if links.get(i) else 0
        body += nxt.to_bytes(4, "little") + extra
        out += body.ljust(sizes[i], b"\x00") + bytes([0x40 + i]) * 48
    return bytes(out)


def _strip(index: int) -> dict[int, tuple[int, list[int]]]:
    return {0x0111: (4, [-100 - index]), 0x0117: (4, [48])}


@pytest.mark.parametrize(
    ("directories", "links", "holder"),
    [
        ([{**_strip(0), 0x0112: (3, [1])}], {}, 0),  # IFD0's own strip
        ([{0x0112: (3, [1])}, {0x0103: (3, [1])}, _strip(2)], {0: 1, 1: 2}, 2),  # IFD2
        ([{0x014A: (4, [-2, -3])}, {0x0103: (3, [1])}, _strip(2)], {}, 2),  # a SubIFD
        ([{0x8769: (4, [-2])}, {0x0144: (4, [-100 - 1]), 0x0145: (4, [48])}], {}, 1),  # EXIF IFD, tiles
    ],
)
def test_raw_image_data_of_every_directory_is_blanked(
    directories: list[dict[int, tuple[int, list[int]]]], links: dict[int, int], holder: int
) -> None:
    tiff = _raw_tiff(directories, links)
    raw = bytes([0x40 + holder]) * 48
    layout = exif.parse(tiff)
    assert "uncompressed image data inside EXIF blanked" in layout.notes()
    out = exif.protect(tiff, layout, None)
    assert raw in tiff and raw not in out and len(out) == len(tiff)


def test_directories_that_link_in_a_loop_are_read_once() -> None:
    tiff = _raw_tiff([{0x014A: (4, [-1, -2])}, {**_strip(1), 0x014A: (4, [-1])}], {0: 1})
    out = exif.protect(tiff, exif.parse(tiff), None)
    assert bytes([0x41]) * 48 in tiff and bytes([0x41]) * 48 not in out


def test_links_to_links_cost_no_more_than_the_directories_taken() -> None:
    # 2700 SubIFDs entries, each naming the same 8100 offsets: 21 million links in 65 KB
    links = struct.pack("<8100I", *[8] * 8100)
    ifd = struct.pack("<H", 2700) + struct.pack("<HHII", 0x014A, 4, 8100, 8) * 2700 + bytes(4)
    tiff = b"II*\x00" + struct.pack("<I", 8 + len(links)) + links + ifd
    started = time.perf_counter()
    layout = exif.parse(tiff)
    assert time.perf_counter() - started < 2 and layout.strips == ()


def test_a_block_of_more_strips_than_a_camera_writes_is_unreadable() -> None:
    n = 5000
    tiff = _raw_tiff([{0x0111: (4, [-100] * n), 0x0117: (4, [48] * n)}], {})
    with pytest.raises(exif.ExifError, match="strips or tiles"):
        exif.parse(tiff)


def test_a_strip_that_claims_the_directory_leaves_its_tags() -> None:
    tiff = _raw_tiff([{0x0112: (3, [6]), 0x0111: (4, [8]), 0x0117: (4, [4096])}], {})
    out = exif.protect(tiff, exif.parse(tiff), None)
    assert exif.parse(out).orientation == 6 and out[8 : 8 + 2 + 12 * 3] == tiff[8 : 8 + 2 + 12 * 3]
    assert not any(out[8 + 2 + 12 * 3 + 4 :])  # the rest, the strip's, is blanked


@pytest.mark.parametrize("first", [b"\x00", b"\xbc"])
def test_a_maker_note_preview_whose_first_byte_is_wrong_is_blanked(first: bytes) -> None:
    preview = first + thumbnail_jpeg((10, 20, 30), size=(24, 16))[1:]
    tiff = _tiff(exif_bytes(1, None, maker_note=b"MLT0" + preview))
    out = exif.protect(tiff, exif.parse(tiff), gradient())
    assert preview[1:] in tiff and preview[1:] not in out


def _ifd(entries: list[tuple[int, int, int, bytes]], next_offset: int) -> bytes:
    body = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")
    return body + struct.pack("<I", next_offset)


@pytest.mark.parametrize("counts", [None, (9, 1, struct.pack("<i", 3600))])  # absent, SLONG
def test_raw_thumbnail_strips_of_unreadable_length_make_the_block_unreadable(counts) -> None:
    raw = bytes(range(256)) * 14  # a 40×30 RGB thumbnail's bytes, near enough
    entries = [(0x0100, 3, 1, b"\x28\x00"), (0x0101, 3, 1, b"\x1e\x00"), (0x0103, 3, 1, b"\x01\x00"),
               (0x0111, 4, 1, b"")]
    if counts is not None:
        entries.append((0x0117, *counts))
    ifd1_at = 8 + 18
    data_at = ifd1_at + 2 + 12 * len(entries) + 4
    entries[3] = (0x0111, 4, 1, struct.pack("<I", data_at))
    tiff = (b"II*\x00" + struct.pack("<I", 8) + _ifd([(0x0112, 3, 1, b"\x01\x00")], ifd1_at)
            + _ifd(entries, 0) + raw)
    with pytest.raises(exif.ExifError, match="0x0111|0x0117"):
        exif.parse(tiff)


def test_a_thumbnail_length_past_its_end_leaves_what_follows() -> None:
    # a writer counts the pad byte after an odd-length thumbnail; a maker note follows it,
    # its own preview's EOI further on: the thumbnail ends where its length says
    thumb = thumbnail_jpeg() + b"\x00"
    note = b"GraspMN\x00SerialNumber=12345678\x00" + thumbnail_jpeg((10, 10, 10), (8, 8))
    ifd1_at, exif_at = 8 + 30, 8 + 30 + 42
    thumb_at = exif_at + 18
    tiff = (b"II*\x00" + struct.pack("<I", 8)
            + _ifd([(0x0112, 3, 1, b"\x01\x00"), (0x8769, 4, 1, struct.pack("<I", exif_at))], ifd1_at)
            + _ifd([(0x0103, 3, 1, b"\x06\x00"), (0x0201, 4, 1, struct.pack("<I", thumb_at)),
                    (0x0202, 4, 1, struct.pack("<I", len(thumb)))], 0)
            + _ifd([(0x927C, 7, len(note), struct.pack("<I", thumb_at + len(thumb)))], 0)
            + thumb + note)
    layout = exif.parse(tiff)
    assert layout.thumbnail == (thumb_at, thumb_at + len(thumb))
    out = exif.protect(tiff, layout, gradient())
    assert b"GraspMN\x00SerialNumber=12345678\x00" in out
