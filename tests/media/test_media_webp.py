import io
import zlib

import numpy as np
import piexif
import pytest
from _media_builders import (
    encoded,
    exif_bytes,
    gradient,
    icc_profile,
    protect,
    thumbnail_jpeg,
    xmp_packet,
)
from PIL import Image

from grasp_guard.errors import SizeBudgetError, UnsupportedFormatError
from grasp_guard.media import decode, encode
from grasp_guard.media.orientation import to_stored
from grasp_guard.media.webp import read_chunks

XMP = xmp_packet(b' xmp:Rating="1"')


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _fourccs(data: bytes) -> list[bytes]:
    return [c.fourcc for c in read_chunks(data)]


def _chunk(data: bytes, fourcc: bytes) -> bytes:
    return next(c.data for c in read_chunks(data) if c.fourcc == fourcc)


def _textured() -> np.ndarray:
    noise = np.random.default_rng(0).integers(-20, 20, (48, 64, 3))
    return np.clip(gradient().astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("quality", [40, 75, 95])
def test_lossy_keeps_its_quality_and_metadata(quality: int) -> None:
    source = encoded(
        _textured(),
        "WEBP",
        quality=quality,
        exif=exif_bytes(1, thumbnail_jpeg()),
        icc_profile=icc_profile(),
        xmp=XMP,
    )
    image = decode(source)
    assert not image.params.lossless and abs(image.params.quality - quality) <= 6
    protected = protect(image.upright)
    data = encode(image, protected)
    assert _fourccs(data) == _fourccs(source) == [b"VP8X", b"ICCP", b"VP8 ", b"EXIF", b"XMP "]
    assert _chunk(data, b"ICCP") == _chunk(source, b"ICCP") and _chunk(data, b"XMP ") == XMP
    assert _chunk(data, b"VP8X")[0] == _chunk(source, b"VP8X")[0]  # the same feature flags
    after = _open(data)
    assert np.abs(np.asarray(after).astype(int) - protected).mean() < 12
    before_exif, after_exif = (
        piexif.load(_chunk(source, b"EXIF")),
        piexif.load(_chunk(data, b"EXIF")),
    )
    for ifd in ("0th", "Exif", "GPS"):
        assert after_exif[ifd] == before_exif[ifd]
    assert after_exif["thumbnail"] != before_exif["thumbnail"]


def test_lossless_stays_lossless_and_exact() -> None:
    rgba = np.dstack([gradient(), np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))])
    source = encoded(rgba, "WEBP", lossless=True)
    image = decode(source)
    assert image.params.lossless and image.alpha is not None
    protected = protect(image.upright)
    data = encode(image, protected)
    assert b"VP8L" in _fourccs(data) and b"VP8 " not in _fourccs(data)
    got = np.asarray(_open(data))
    np.testing.assert_array_equal(got[:, :, :3], protected)
    np.testing.assert_array_equal(got[:, :, 3], rgba[:, :, 3])


def test_lossy_alpha_is_kept() -> None:
    rgba = np.dstack([_textured(), np.full((48, 64), 128, np.uint8)])
    source = encoded(rgba, "WEBP", quality=80)
    image = decode(source)
    data = encode(image, protect(image.upright))
    assert {b"VP8X", b"ALPH", b"VP8 "} <= set(_fourccs(data))
    np.testing.assert_array_equal(np.asarray(_open(data))[:, :, 3], rgba[:, :, 3])


@pytest.mark.parametrize("orientation", [3, 6])
def test_orientation_is_written_back_as_stored(orientation: int) -> None:
    stored = np.ascontiguousarray(to_stored(gradient(), orientation))
    source = encoded(stored, "WEBP", lossless=True, exif=exif_bytes(orientation))
    image = decode(source)
    np.testing.assert_array_equal(image.upright, gradient())
    data = encode(image, image.upright)
    np.testing.assert_array_equal(np.asarray(_open(data)), stored)
    assert piexif.load(_chunk(data, b"EXIF"))["0th"][piexif.ImageIFD.Orientation] == orientation


@pytest.mark.parametrize("extended", [False, True])
def test_exact_and_max_sizes(extended: bool) -> None:
    kwargs = {"exif": exif_bytes(1)} if extended else {}
    source = encoded(_textured(), "WEBP", quality=90, **kwargs)
    assert (_fourccs(source)[0] == b"VP8X") is extended
    image = decode(source)
    noisy = np.clip(
        image.upright.astype(int) + np.random.default_rng(1).integers(-40, 40, image.upright.shape),
        0,
        255,
    ).astype(np.uint8)
    assert len(encode(image, noisy)) > len(source)  # the budget must do work
    bounded = encode(image, noisy, size_mode="max")
    exact = encode(image, noisy, size_mode="exact")
    assert len(bounded) <= len(source) and len(exact) == len(source)
    assert _fourccs(exact)[0] == b"VP8X" and b"GRPD" in _fourccs(exact)
    for data in (bounded, exact):
        assert _open(data).size == (64, 48)
    again = decode(exact)
    assert all(c.fourcc != b"GRPD" for c in again.params.unknown)


def test_exact_on_an_odd_length_is_impossible() -> None:
    source = encoded(gradient(), "WEBP", quality=80) + b"\x00"  # a stray byte after the RIFF
    image = decode(source)
    with pytest.raises(SizeBudgetError, match="even length"):
        encode(image, image.upright, size_mode="exact")


def test_lossless_never_degrades_to_meet_a_budget() -> None:
    source = encoded(np.full((48, 64, 3), 50, np.uint8), "WEBP", lossless=True)
    image = decode(source)
    noise = np.random.default_rng(0).integers(0, 256, image.upright.shape, dtype=np.uint8)
    with pytest.raises(SizeBudgetError, match="WebP"):
        encode(image, noise, size_mode="max")


def test_unknown_chunks_are_carried_and_image_carriers_dropped() -> None:
    source = encoded(gradient(), "WEBP", quality=80, exif=exif_bytes(1))
    extra = b"UNKN" + (6).to_bytes(4, "little") + b"abcdef"
    c2pa = b"C2PA" + (4).to_bytes(4, "little") + b"jumb"
    thumb = thumbnail_jpeg()
    preview = b"PREV" + len(thumb).to_bytes(4, "little") + thumb + b"\x00" * (len(thumb) & 1)
    png = encoded(gradient(16, 16), "PNG")
    png_preview = b"PNGP" + len(png).to_bytes(4, "little") + png + b"\x00" * (len(png) & 1)
    body = source[12:] + extra + c2pa + preview + png_preview
    source = b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body
    image = decode(source)
    assert any("C2PA" in n for n in image.notes) and any("PREV" in n for n in image.notes)
    assert any("PNGP" in n for n in image.notes)
    data = encode(image, image.upright)
    assert _fourccs(data)[-1] == b"UNKN" and _chunk(data, b"UNKN") == b"abcdef"
    assert not {b"C2PA", b"PREV", b"PNGP"} & set(_fourccs(data))


def test_animated_webp_is_unsupported() -> None:
    out = io.BytesIO()
    frames = [Image.fromarray(gradient()), Image.fromarray(255 - gradient())]
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(UnsupportedFormatError, match="animated"):
        decode(out.getvalue())


def test_a_large_unknown_chunk_is_dropped_for_the_pixels_it_may_hold() -> None:
    pixels = zlib.compress(np.random.default_rng(0).integers(0, 256, 2304, dtype=np.uint8).tobytes())
    raw = b"RAWP" + len(pixels).to_bytes(4, "little") + pixels + b"\x00" * (len(pixels) & 1)
    source = encoded(gradient(), "WEBP", quality=80, exif=exif_bytes(1))
    body = source[12:] + raw
    image = decode(b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body)
    assert any("unknown chunk b'RAWP' dropped" in n for n in image.notes)
    assert b"RAWP" not in _fourccs(encode(image, image.upright))
