import io

import numpy as np
import pytest
from PIL import Image

from grasp_guard.media.webp_quality import estimate_quality


def _vp8(quality: int) -> bytes:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:96, 0:128]
    pixels = np.dstack([x * 2, y * 2, x + y]) + rng.integers(-20, 20, (96, 128, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "WEBP", quality=quality)
    data = out.getvalue()
    at = data.index(b"VP8 ")
    return data[at + 8 : at + 8 + int.from_bytes(data[at + 4 : at + 8], "little")]


@pytest.mark.parametrize("quality", [10, 30, 50, 75, 90, 100])
def test_estimate_is_within_a_few_points_on_a_textured_image(quality: int) -> None:
    estimate = estimate_quality(_vp8(quality))
    assert estimate is not None and abs(estimate - quality) <= 6


@pytest.mark.parametrize("data", [b"", b"\x00" * 20, b"\x10\x02\x00\x9d\x01\x2a" + b"\x00" * 4])
def test_unreadable_headers_give_none(data: bytes) -> None:
    assert estimate_quality(data) is None
