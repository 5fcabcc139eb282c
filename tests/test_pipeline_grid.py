"""A crop's phase on its image's JPEG block grid: the simulated re-encode's blocks are the real ones."""

from __future__ import annotations

import io

import numpy as np
import piexif
import pytest
import torch
from grasp_sdk.options import ProtectOptions
from PIL import Image
from skimage import data

from grasp_guard.defense.transforms import DiffJPEG
from grasp_guard.faces.regions import extract_crops, to_tensor
from grasp_guard.media import decode, encode
from grasp_guard.media.orientation import to_stored
from grasp_guard.pipeline import prepare


def _jpeg(stored: np.ndarray, orientation: int) -> bytes:
    out = io.BytesIO()
    exif = piexif.dump({"0th": {piexif.ImageIFD.Orientation: orientation}})
    Image.fromarray(stored).save(out, "JPEG", quality=85, exif=exif)
    return out.getvalue()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / (a.double() - b.double()).square().mean()))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_phase_is_the_stored_grids_seen_upright(orientation: int) -> None:
    upright = np.ascontiguousarray(data.astronaut()[5:490, 3:501])  # sides not multiples of 16
    stored = np.ascontiguousarray(to_stored(upright, orientation))
    prepared = prepare(_jpeg(stored, orientation), ProtectOptions())
    assert np.array_equal(prepared.image.upright, decode(_jpeg(stored, orientation)).upright)
    task = prepared.tasks[0]
    assert task.grid_phase is not None
    noisy = np.random.default_rng(0).integers(-6, 7, prepared.image.upright.shape)
    protected = np.clip(prepared.image.upright + noisy, 0, 255).astype(np.uint8)
    crop = extract_crops(protected, prepared.regions)[0]
    received = decode(encode(prepared.image, protected)).upright
    real = to_tensor(extract_crops(received, prepared.regions))[..., 8:-8, 8:-8]

    def agreement(phase: tuple[int, int, int]) -> float:
        out = DiffJPEG(85)(to_tensor([crop]), grid=torch.tensor([phase]))
        return _psnr(out[..., 8:-8, 8:-8], real)

    right = agreement(task.grid_phase)
    assert right > 47.0
    y, x, transposed = task.grid_phase
    assert transposed == (orientation >= 5)
    wrong = [((y + d) % 16, (x + d) % 16, transposed) for d in (3, 8)] + [(y, x, 1 - transposed)]
    # measured: 50.2–51.1 dB right, at most 44.3 at a wrong phase or block orientation
    assert right > max(map(agreement, wrong)) + 3.0


def test_no_phase_where_the_site_resizes() -> None:
    photo = _jpeg(data.astronaut(), 1)
    assert prepare(photo, ProtectOptions()).tasks[0].grid_phase is not None
    assert prepare(photo, ProtectOptions(site_max_side=256)).tasks[0].grid_phase is None
