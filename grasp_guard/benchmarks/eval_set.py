"""The benchmark's fixed eval set: real face crops, never used to train a surrogate.

The crops lie in ``faces/`` beside this module with their provenance (``PROVENANCE.md``,
``manifest.json``); ``bench/derive_face_set.py`` derived them from the shared real photos with
the project's own detector and framing.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

FACE_SET_DIR = Path(__file__).parent / "faces"
FACE_SIDE = 256


def face_names() -> list[str]:
    """The crops' file names, in the manifest's fixed order."""
    manifest = json.loads((FACE_SET_DIR / "manifest.json").read_text(encoding="utf-8"))
    return [entry["file"] for entry in manifest]


def eval_crops(n: int, resolution: int, offset: int = 0) -> torch.Tensor:
    """The first ``n`` real face crops from ``offset`` on, resized (area) to ``resolution``.

    Returns:
        (n, 3, resolution, resolution) float32 in [0, 1], quantised to 8 bits.
    Raises:
        ValueError: the set holds fewer than ``offset + n`` faces.
    """
    names = face_names()
    if offset + n > len(names) or n < 1 or offset < 0:
        raise ValueError(f"the face set holds {len(names)} crops; asked for {n} from {offset}")
    crops = []
    for name in names[offset:offset + n]:
        with Image.open(FACE_SET_DIR / name) as im:
            rgb = np.asarray(im.convert("RGB"))
        if rgb.shape[0] != resolution:
            rgb = cv2.resize(rgb, (resolution, resolution), interpolation=cv2.INTER_AREA)
        crops.append(rgb)
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
