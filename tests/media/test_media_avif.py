import io
import struct

import numpy as np
import pytest
from _media_builders import encoded, exif_bytes, gradient, icc_profile, protect, xmp_packet
from PIL import Image, features

from grasp_guard.media import decode, encode
from grasp_guard.media.orientation import to_stored

pytestmark = pytest.mark.skipif(
    not features.check("avif"), reason="this Pillow has no AVIF support"
)
XMP = xmp_packet(b' xmp:Rating="5"')


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.mark.parametrize("orientation", [1, 6])
def test_round_trip_keeps_orientation_and_metadata(orientation: int) -> None:
    stored = np.ascontiguousarray(to_stored(gradient(), orientation))
    source = encoded(
        stored, "AVIF", quality=90, exif=exif_bytes(orientation), icc_profile=icc_profile(), xmp=XMP
    )
    image = decode(source)
    assert (
        image.format == "AVIF" and image.orientation == orientation and image.mime == "image/avif"
    )
    assert np.abs(image.upright.astype(int) - gradient()).mean() < 4
    protected = protect(image.upright)
    data = encode(image, protected)
    after = _open(data)
    assert after.size == _open(source).size
    assert after.getexif().get(0x0112, 1) == orientation and after.getexif()[0x010F] == "GraspCam"
    assert after.info["icc_profile"] == icc_profile() and after.info["xmp"] == XMP
    assert np.abs(decode(data).upright.astype(int) - protected).mean() < 6


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:0"])
def test_subsampling_is_read_from_av1c(subsampling: str) -> None:
    image = decode(encoded(gradient(), "AVIF", subsampling=subsampling))
    assert image.params.subsampling == subsampling


def test_alpha_is_kept() -> None:
    rgba = np.dstack([gradient(), np.full((48, 64), 77, np.uint8)])
    image = decode(encoded(rgba, "AVIF", quality=90))
    assert image.alpha is not None
    after = _open(encode(image, image.upright))
    assert np.abs(np.asarray(after)[:, :, 3].astype(int) - 77).max() <= 2


def test_exact_and_max_sizes() -> None:
    source = encoded(gradient(), "AVIF", quality=60)
    image = decode(source)
    noisy = np.clip(
        image.upright.astype(int) + np.random.default_rng(0).integers(-30, 30, image.upright.shape),
        0,
        255,
    ).astype(np.uint8)
    bounded = encode(image, noisy, size_mode="max")
    exact = encode(image, noisy, size_mode="exact")
    assert len(bounded) <= len(source) and len(exact) == len(source)
    assert _open(exact).size == (64, 48)


def _mistyped_exif(orientation_tag: int) -> bytes:
    """A TIFF block with an Orientation tag (or a stand-in id) and XResolution typed UNDEFINED."""
    entries = [(orientation_tag, 3, 1, struct.pack("<HH", 1, 0)), (0x011A, 7, 4, b"\x48\x00\x00\x00")]
    body = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, count) + value for tag, kind, count, value in entries)
    return b"II*\x00" + struct.pack("<I", 8) + body + struct.pack("<I", 0)


def test_exif_the_writer_cannot_rewrite_is_dropped_at_decode() -> None:
    # Pillow's writer re-serialises EXIF that has an Orientation tag (and fails on the
    # mistyped one): write a stand-in tag id, then make it Orientation in the file
    source = encoded(gradient(), "AVIF", quality=80, exif=b"Exif\x00\x00" + _mistyped_exif(0x0113))
    source = source.replace(_mistyped_exif(0x0113), _mistyped_exif(0x0112))
    image = decode(source)
    assert any("EXIF dropped" in note for note in image.notes)
    assert _open(encode(image, protect(image.upright))).getexif().get(0x011A) is None


def _nclx(data: bytes) -> bytes:
    at = data.index(b"colrnclx") + 8
    return data[at:at + 7]


@pytest.mark.parametrize(("primaries", "transfer"), [(12, 13), (9, 16), (1, 13)])
def test_the_nclx_colour_primaries_and_transfer_are_kept(primaries: int, transfer: int) -> None:
    # Display P3 (phones, Chrome), BT.2020 PQ (HDR): libavif writes sRGB's, and the same values
    # under other primaries are other colours
    source = bytearray(encoded(gradient(), "AVIF", quality=90))
    at = source.index(b"colrnclx") + 8
    source[at:at + 4] = struct.pack(">HH", primaries, transfer)
    image = decode(bytes(source))
    data = encode(image, protect(image.upright))
    assert _nclx(data)[:4] == struct.pack(">HH", primaries, transfer)
    assert _nclx(data)[4:] == _nclx(encoded(gradient(), "AVIF"))[4:]  # matrix, range: libavif's
    assert _open(data).size == _open(bytes(source)).size
