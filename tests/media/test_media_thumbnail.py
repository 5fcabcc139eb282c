import io
import struct
import warnings

import numpy as np
import pytest
from _media_builders import encoded, gradient
from PIL import Image, JpegImagePlugin

from grasp_guard.media.jpeg_segments import split_header
from grasp_guard.media.thumbnail import DEFAULT_BOX, jpeg_thumbnail, scale_qtables


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize(
    ("size", "subsampling", "mode"),
    [((16, 12), 2, "RGB"), ((40, 30), 0, "RGB"), ((20, 15), -1, "L")],
)
def test_thumbnail_reuses_the_old_box_tables_and_mode(
    size: tuple[int, int], subsampling: int, mode: str
) -> None:
    pixels = (
        np.zeros((*size[::-1], 3), np.uint8) if mode == "RGB" else np.zeros(size[::-1], np.uint8)
    )
    old = encoded(
        pixels, "JPEG", quality=60, **({"subsampling": subsampling} if subsampling >= 0 else {})
    )
    new = _open(jpeg_thumbnail(gradient(96, 128), like=old))
    assert new.size == size and new.mode == mode
    assert new.quantization == _open(old).quantization
    if subsampling >= 0:
        assert JpegImagePlugin.get_sampling(new) == subsampling


def test_thumbnail_has_no_app_segments_and_keeps_aspect() -> None:
    data = jpeg_thumbnail(gradient(100, 200), like=None)
    assert data[2:4] != b"\xff\xe0"
    assert _open(data).size == (DEFAULT_BOX[0], DEFAULT_BOX[0] // 2)


def test_scale_makes_a_smaller_thumbnail() -> None:
    noisy = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert len(jpeg_thumbnail(noisy, like=None, scale=4.0)) < len(jpeg_thumbnail(noisy, like=None))


def test_scale_qtables_clips() -> None:
    assert scale_qtables([[1, 100, 200]], 2.0) == [[2, 200, 255]]
    assert scale_qtables([[300]], 2.0) == [[300]]


def _without_tables(jpeg: bytes) -> bytes:
    segments, sos = split_header(jpeg)
    kept = b"".join(s.to_bytes() for s in segments if s.marker != 0xDB)
    return b"\xff\xd8" + kept + jpeg[sos:]


def _huge(jpeg: bytes) -> bytes:
    at = jpeg.index(b"\xff\xc0") + 5  # SOF0: length, precision, then height and width
    return jpeg[:at] + b"\xff\xff\xff\xff" + jpeg[at + 4 :]


def _five_tables(jpeg: bytes) -> bytes:
    """Valid, but more quantisation tables (ids 2-4 added) than a JPEG writer takes."""
    extra = b"".join(bytes([i]) + bytes(range(1, 65)) for i in (2, 3, 4))
    return jpeg[:2] + b"\xff\xdb" + struct.pack(">H", len(extra) + 2) + extra + jpeg[2:]


def _bomb(jpeg: bytes) -> bytes:
    at = jpeg.index(b"\xff\xc0") + 5
    return jpeg[:at] + struct.pack(">HH", 10_000, 10_000) + jpeg[at + 4 :]


@pytest.mark.parametrize("broken", [_without_tables, _huge, _five_tables, _bomb])
def test_an_unreadable_old_thumbnail_gives_the_default_one(broken) -> None:
    old = broken(encoded(np.zeros((12, 16, 3), np.uint8), "JPEG"))
    with warnings.catch_warnings():  # where warnings are errors, a bomb's is one
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        new = _open(jpeg_thumbnail(gradient(240, 320), like=old))
    assert max(new.size) == max(DEFAULT_BOX)
