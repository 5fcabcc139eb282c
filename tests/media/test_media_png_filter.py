import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from grasp_guard.media.png_chunks import SIGNATURE, Chunk
from grasp_guard.media.png_filter import ADAPTIVE, encode_idat

COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}


def _png(samples: np.ndarray, interlace: bool, kind: int) -> bytes:
    h, w, c = samples.shape
    depth = 16 if samples.dtype == np.uint16 else 8
    ihdr = struct.pack(">IIBBBBB", w, h, depth, COLOUR_TYPES[c], 0, 0, int(interlace))
    idat = encode_idat(samples, interlace=interlace, kind=kind)
    return (
        SIGNATURE
        + Chunk(b"IHDR", ihdr).to_bytes()
        + Chunk(b"IDAT", idat).to_bytes()
        + Chunk(b"IEND", b"").to_bytes()
    )


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("kind", [ADAPTIVE, 0, 1, 2, 3, 4])
def test_encoded_data_decodes_exactly(
    channels: int, dtype: type, interlace: bool, kind: int
) -> None:
    rng = np.random.default_rng(channels)
    high = 65536 if dtype == np.uint16 else 256
    samples = rng.integers(0, high, (13, 11, channels)).astype(dtype)
    samples[:6] //= 7  # some smooth-ish rows so every filter gets picked
    decoded = cv2.imdecode(
        np.frombuffer(_png(samples, interlace, kind), np.uint8), cv2.IMREAD_UNCHANGED
    )
    if decoded.ndim == 2:
        decoded = decoded[:, :, None]
    order = {1: [0], 2: [0, 0, 0, 1], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[channels]  # OpenCV: BGR(A)
    expected = samples[:, :, order]
    np.testing.assert_array_equal(decoded, expected)


def test_interlaced_8bit_matches_pillow() -> None:
    samples = np.random.default_rng(5).integers(0, 256, (17, 9, 3)).astype(np.uint8)
    img = Image.open(io.BytesIO(_png(samples, True, ADAPTIVE)))
    assert img.info.get("interlace") == 1
    np.testing.assert_array_equal(np.asarray(img), samples)


def test_adaptive_filtering_beats_no_filter_on_gradients() -> None:
    y, x = np.mgrid[0:64, 0:64]
    samples = np.dstack([x * 3, y * 2, x + y]).astype(np.uint8)
    assert len(encode_idat(samples, interlace=False)) < len(
        encode_idat(samples, interlace=False, kind=0)
    )


def test_rows_are_prefixed_with_their_filter_type() -> None:
    samples = np.zeros((300, 2, 1), np.uint8)  # more rows than one band
    raw = zlib.decompress(encode_idat(samples, interlace=False, kind=2))
    assert raw == b"\x02\x00\x00" * 300
