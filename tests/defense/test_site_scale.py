"""A face shrunk to fit the ladder meets the site's processing at the photo's resolution."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from grasp_guard.defense.transforms import (
    AtSiteScale,
    DiffJPEG,
    Resize,
    SiteSpec,
    build_site_pipeline,
    site_factor,
)
from grasp_guard.errors import ConfigError

JPEG94 = SiteSpec(jpeg_quality=(94, 94))


@pytest.mark.parametrize(("spec", "long_side", "crop_scale", "factor"), [
    (JPEG94, 2280, 1.0, 1.0),  # cut at the photo's resolution: as before
    (JPEG94, 2280, 512 / 1328, 3.0),  # couple.jpg's face 0: the site holds it 2.6× finer
    (JPEG94, 2280, 512 / 640, 1.0),  # 1.25× finer rounds to the crop's own pixels
    (SiteSpec(max_side=1080), 2160, 1.0, 0.5),  # the site halves the photo
    (SiteSpec(max_side=1080), 2160, 0.8, 0.625),  # ... and the crop was shrunk 0.8× already
    (SiteSpec(max_side=1080), 2160, 0.25, 2.0),  # ... a quarter: the site's copy is finer
])
def test_site_factor_is_site_pixels_per_crop_pixel(spec: SiteSpec, long_side: int,
                                                   crop_scale: float, factor: float) -> None:
    assert site_factor(spec, long_side, crop_scale) == pytest.approx(factor)


def test_a_shrunk_crop_is_reencoded_at_the_sites_resolution() -> None:
    (step,) = build_site_pipeline(JPEG94, 2280, crop_scale=512 / 1328).steps
    assert isinstance(step, AtSiteScale) and step.factor == 3
    assert isinstance(step.inner.steps[0], DiffJPEG)
    (plain,) = build_site_pipeline(JPEG94, 2280).steps
    assert isinstance(plain, DiffJPEG)
    steps = build_site_pipeline(SiteSpec(max_side=1080, jpeg_quality=(80, 80)), 2160,
                                crop_scale=0.8).steps
    assert isinstance(steps[0], Resize) and steps[0].scale_range[0] == pytest.approx(0.625)
    assert isinstance(steps[1], DiffJPEG)
    with pytest.raises(ConfigError, match="crop_scale"):
        build_site_pipeline(JPEG94, 2280, crop_scale=1.5)


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB")).astype(np.float32)


def test_the_site_scale_model_keeps_what_the_real_codec_keeps() -> None:
    # a photo at 3× the crop, a crop-scale perturbation pasted into it bilinearly, a real
    # Pillow q80 encode of the photo, the re-cut crop area-averaged: what survives of δ
    side, k, q = 192, 3, 80
    photo = cv2.resize(data.astronaut()[:384, 64:448], (side * k,) * 2,
                       interpolation=cv2.INTER_CUBIC)
    crop = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    delta = np.random.default_rng(0).choice([-4.0, 4.0], crop.shape).astype(np.float32)
    pasted = photo + cv2.resize(delta, (side * k,) * 2, interpolation=cv2.INTER_LINEAR)
    pasted = np.clip(np.rint(pasted), 0, 255).astype(np.uint8)

    def down(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a, (side, side), interpolation=cv2.INTER_AREA)

    real = down(_jpeg(pasted, q)) - down(_jpeg(photo, q))

    def modelled(pipeline: torch.nn.Module) -> np.ndarray:
        x = torch.from_numpy(np.stack([crop + delta, crop])).permute(0, 3, 1, 2) / 255
        y = pipeline(x.clamp(0, 1)).permute(0, 2, 3, 1).numpy() * 255
        return y[0] - y[1]

    spec = SiteSpec(jpeg_quality=(q, q))
    at_site = modelled(build_site_pipeline(spec, side * k, seed=0, crop_scale=1 / k))
    at_crop = modelled(build_site_pipeline(spec, side * k, seed=0))

    def rms(a: np.ndarray) -> float:
        return float(np.sqrt(np.mean(a ** 2)))

    # what comes back is δ plus the codec's own noise, which no model draws alike pixel for
    # pixel; the crop-scale codec quantises δ's checkerboard as if it were the photo's own
    # detail and returns far more than the real one does
    assert rms(at_site) == pytest.approx(rms(real), rel=0.1)
    assert rms(at_crop) > 1.4 * rms(real)
    assert rms(at_site - real) < rms(at_crop - real) - 0.5 * rms(real)
