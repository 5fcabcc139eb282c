import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from _media_builders import encoded, exif_bytes, gradient, heic, protect, thumbnail_jpeg
from PIL import Image, features

from grasp_guard.errors import (
    GraspGuardError,
    ImageTooLargeError,
    InvalidImageError,
    UnsupportedFormatError,
)
from grasp_guard.media import DecodedImage, decode, encode
from grasp_guard.media.orientation import ORIENTATIONS, to_stored


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def _apng() -> bytes:
    out = io.BytesIO()
    Image.fromarray(gradient()).save(
        out, "PNG", save_all=True, append_images=[Image.fromarray(255 - gradient())]
    )
    return out.getvalue()


def _cmyk_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("CMYK", (16, 16), (0, 50, 100, 0)).save(out, "JPEG")
    return out.getvalue()


def _corrupt_png_data() -> bytes:
    png = encoded(gradient(), "PNG")
    at = png.index(b"IDAT")
    length = struct.unpack(">I", png[at - 4 : at])[0]
    junk = bytes(range(256)) * (length // 256 + 1)
    data = b"IDAT" + junk[:length]
    return (
        png[: at - 4]
        + struct.pack(">I", length)
        + data
        + struct.pack(">I", zlib.crc32(data))
        + png[at + 8 + length :]
    )


JPEG = encoded(gradient(), "JPEG", quality=80, exif=exif_bytes(1, thumbnail_jpeg()))
PNG = encoded(gradient(), "PNG")
WEBP = encoded(gradient(), "WEBP", quality=80)

BAD_INPUTS = [
    ("empty", b"", InvalidImageError, "empty"),
    ("text", b"hello, this is not an image", InvalidImageError, "not an image"),
    ("jpeg magic only", b"\xff\xd8\xff", InvalidImageError, "JPEG"),
    ("truncated jpeg", JPEG[: len(JPEG) // 2], InvalidImageError, "truncated"),
    ("truncated jpeg header", JPEG[:40], InvalidImageError, "JPEG"),
    ("truncated png", PNG[: len(PNG) // 2], InvalidImageError, "PNG"),
    ("png bad crc", PNG[:50] + bytes([PNG[50] ^ 0xFF]) + PNG[51:], InvalidImageError, "PNG"),
    ("png corrupt data", _corrupt_png_data(), InvalidImageError, "PNG"),
    ("png without data", _png_header_only(8, 8), InvalidImageError, "PNG"),
    ("truncated webp", WEBP[: len(WEBP) // 2], InvalidImageError, "WEBP"),
    ("webp bad vp8 start code", WEBP[:23] + b"\x00\x00\x00" + WEBP[26:], InvalidImageError, "WEBP"),
    ("gif", encoded(gradient(), "GIF"), UnsupportedFormatError, "GIF"),
    ("tiff", encoded(gradient(), "TIFF"), UnsupportedFormatError, "TIFF"),
    (
        "heic header only",
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64),
        InvalidImageError,
        "HEIF",
    ),
    ("jxl", b"\xff\x0a" + bytes(64), UnsupportedFormatError, "JXL"),
    ("cmyk jpeg", _cmyk_jpeg(), UnsupportedFormatError, "CMYK"),
    ("apng", _apng(), UnsupportedFormatError, "animated"),
    ("bomb header", _png_header_only(100_000, 100_000), ImageTooLargeError, "pixels|decompression"),
]


@pytest.mark.parametrize(
    ("data", "error", "message"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_raises_its_typed_error(
    data: bytes, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        decode(data)


def test_pixel_limit_is_checked_from_the_header() -> None:
    assert decode(PNG, max_pixels=64 * 48).width == 64
    with pytest.raises(ImageTooLargeError, match="exceeds the limit of 3071"):
        decode(PNG, max_pixels=64 * 48 - 1)


@pytest.mark.parametrize("action", ["error", "ignore"])
def test_pillow_bomb_warning_is_never_another_error_type(action: str) -> None:
    # 10000² is between Pillow's warning and error thresholds.
    with warnings.catch_warnings():
        warnings.simplefilter(action, Image.DecompressionBombWarning)
        with pytest.raises(ImageTooLargeError):
            decode(_png_header_only(10_000, 10_000))


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_orientation_decodes_upright_and_writes_back_stored(fmt: str, orientation: int) -> None:
    upright = gradient()
    stored = np.ascontiguousarray(to_stored(upright, orientation))
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    source = encoded(stored, fmt, exif=exif_bytes(orientation), **kwargs)
    image = decode(source)
    assert image.orientation == orientation
    np.testing.assert_array_equal(image.upright, upright)
    out = Image.open(io.BytesIO(encode(image, protect(image.upright))))
    assert out.getexif()[0x0112] == orientation
    np.testing.assert_array_equal(np.asarray(out), to_stored(protect(upright), orientation))


def test_decoded_arrays_are_read_only() -> None:
    image = decode(encoded(np.dstack([gradient(), np.full((48, 64), 9, np.uint8)]), "PNG"))
    assert isinstance(image, DecodedImage) and image.mime == "image/png"
    assert (image.width, image.height) == (64, 48)
    for array in (image.upright, image.alpha):
        with pytest.raises(ValueError):
            array[0, 0] = 0


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((48, 64, 3), np.float32),
        np.zeros((64, 48, 3), np.uint8),
        np.zeros((48, 64), np.uint8),
    ],
)
def test_encode_rejects_pixels_of_another_shape_or_type(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="protected pixels must be uint8"):
        encode(decode(PNG), bad)


def test_encode_rejects_unknown_size_modes() -> None:
    image = decode(PNG)
    with pytest.raises(ValueError, match="size_mode"):
        encode(image, image.upright, size_mode="small")  # type: ignore[arg-type]


SOURCES = {"JPEG": JPEG, "PNG": PNG, "WEBP": WEBP, "HEIF": heic(gradient(), quality=80)}
if features.check("avif"):
    SOURCES["AVIF"] = encoded(gradient(), "AVIF", quality=60)


@pytest.mark.parametrize("fmt", sorted(SOURCES))
@pytest.mark.parametrize("seed", range(12))
def test_damaged_files_decode_or_raise_typed_errors(fmt: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = bytearray(SOURCES[fmt])
    if seed % 3 == 0:
        data = data[: rng.integers(1, len(data))]
    else:
        for at in rng.integers(0, len(data), size=1 + seed % 4):
            data[at] = rng.integers(0, 256)
    try:
        image = decode(bytes(data))
    except GraspGuardError:
        return
    assert len(encode(image, image.upright)) > 0
