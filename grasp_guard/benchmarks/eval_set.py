"""The benchmark's fixed eval crops: held-out scikit-image photos, never seen in training."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from grasp_guard.models.reference_edits import HOLDOUT_IMAGES, load_sample

# The astronaut's face (rows, cols) in skimage.data.astronaut(): always the first crop.
ASTRONAUT_FACE = (slice(10, 210), slice(110, 310))


def eval_crops(n: int, resolution: int, seed: int = 0) -> torch.Tensor:
    """``n`` seeded square crops (side 96–320 px) of the held-out images, resized (area).

    Returns:
        (n, 3, resolution, resolution) float32 in [0, 1], quantised to 8 bits.
    """
    images = [load_sample(name) for name in HOLDOUT_IMAGES]
    rng = np.random.default_rng(seed)
    crops = [images[0][ASTRONAUT_FACE]]
    while len(crops) < n:
        img = images[len(crops) % len(images)]
        h, w = img.shape[:2]
        side = int(rng.integers(96, min(320, h, w) + 1))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crops.append(img[y : y + side, x : x + side])
    resized = np.stack(
        [cv2.resize(c, (resolution, resolution), interpolation=cv2.INTER_AREA) for c in crops[:n]]
    )
    return torch.from_numpy(resized).permute(0, 3, 1, 2).float() / 255.0
