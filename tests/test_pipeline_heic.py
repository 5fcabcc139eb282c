"""An iPhone-style HEIC through the protect path: decode, crops, paste, re-encode, measure.

The optimiser is format-blind and costs minutes on a CPU, so a seeded perturbation stands in
for its outcome here; the whole path with the defense is measured in
``bench/results/photos-heic.md``.
"""

from __future__ import annotations

import io

import numpy as np
import piexif
import pillow_heif
import pytest
from grasp_sdk.options import ProtectOptions
from grasp_sdk.sniff import image_type
from PIL import Image

from grasp_guard.demo import sample_photo
from grasp_guard.errors import InvalidImageError
from grasp_guard.media import decode
from grasp_guard.pipeline import CropOutcome, Engine, finish, prepare

FAST = ProtectOptions(preset="fast")


def _as_heic(jpeg: bytes, **kwargs: object) -> bytes:
    with Image.open(io.BytesIO(jpeg)) as img:
        rgb = np.asarray(img.convert("RGB"))
        exif = img.info["exif"]
    heif = pillow_heif.from_bytes("RGB", (rgb.shape[1], rgb.shape[0]), rgb.tobytes())
    out = io.BytesIO()
    heif.save(out, quality=80, exif=exif, **kwargs)
    return out.getvalue()


@pytest.fixture(scope="module")
def photo() -> bytes:
    return _as_heic(sample_photo(), tile_size=128, thumbnails=[128])


@pytest.fixture(scope="module")
def protected(photo: bytes) -> tuple[bytes, dict]:
    prepared = prepare(photo, FAST)
    rng = np.random.default_rng(0)
    outcomes = [
        CropOutcome(
            np.clip(t.crop.astype(int) + rng.integers(-3, 4, t.crop.shape), 0, 255).astype(
                np.uint8
            ),
            iterations=1,
            seconds=0.0,
            batch_size=1,
        )
        for t in prepared.tasks
    ]
    return finish(prepared, outcomes, Engine.create(("reference",), "cpu"))


def test_a_heic_comes_back_a_protected_heic_with_its_metadata(
    photo: bytes, protected: tuple[bytes, dict]
) -> None:
    out, report = protected
    assert report["protected"] and report["format"] == "HEIF" and len(report["faces"]) == 1
    assert image_type(out) == "image/heic"
    assert any("HEIF thumbnail(s) regenerated" in n for n in report["notes"])
    before, after = decode(photo).upright, decode(out).upright
    x, y, w, h = report["faces"][0]["box"]
    assert (
        np.abs(after[y : y + h, x : x + w].astype(int) - before[y : y + h, x : x + w]).mean() > 0.5
    )
    source_exif = piexif.load(pillow_heif.open_heif(photo).info["exif"])
    out_exif = piexif.load(pillow_heif.open_heif(out).info["exif"])
    assert out_exif["0th"] == source_exif["0th"] and out_exif["Exif"] == source_exif["Exif"]
    assert out_exif["thumbnail"] != source_exif["thumbnail"]
    assert pillow_heif.open_heif(out).info["tiling"]["tile_width"] == 128
    assert report["faces"][0]["psnr"] > 35 and 0.5 < report["size_ratio"] < 2


def test_a_truncated_heic_is_a_typed_error(photo: bytes) -> None:
    with pytest.raises(InvalidImageError, match="HEIF"):
        prepare(photo[: len(photo) - 100], FAST)
