"""The five edits the reference surrogate learns, and the images it learns them on.

Each edit must be *synthesised* (texture, local structure, strokes), not a colour map a
network can pass through: that is what makes a trained editor as fragile as real GAN
editors. All edits are deterministic functions of the (H, W, 3) uint8 RGB input.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

EDIT_NAMES = ("sketch", "cartoon", "hatching", "auburn_streaks", "emboss_sepia")

# scikit-image's bundled sample images (public domain or CC0). Astronaut and coffee are held
# out: never seen in training, they supply the benchmark's eval crops and the demo photo.
TRAIN_IMAGES = (
    "chelsea", "rocket", "colorwheel", "hubble_deep_field", "immunohistochemistry",
    "retina", "camera", "horse", "page", "brick", "grass", "gravel", "moon", "coins", "text",
)
HOLDOUT_IMAGES = ("astronaut", "coffee")


def load_sample(name: str) -> np.ndarray:
    """One scikit-image sample as (H, W, 3) uint8 RGB (grey and RGBA converted)."""
    from skimage import data

    img = np.asarray(getattr(data, name)())
    if img.dtype != np.uint8:
        img = (img.astype(np.float64) / max(img.max(), 1) * 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)


def sketch(img: np.ndarray) -> np.ndarray:
    """Pencil sketch: colour dodge of the grey image with its blurred inverse."""
    grey = _grey(img)
    blur = cv2.GaussianBlur(255.0 - grey, (0, 0), 3.0)
    dodge = np.clip(grey * 255.0 / np.maximum(255.0 - blur, 1.0), 0, 255)
    return np.repeat(dodge[..., None], 3, axis=-1).astype(np.uint8)


def cartoon(img: np.ndarray) -> np.ndarray:
    """Flat colour regions (bilateral filter, quantised) with dark ink edges."""
    flat = img
    for _ in range(2):
        flat = cv2.bilateralFilter(flat, 5, 60, 5)
    flat = (flat // 48) * 48 + 24
    grey = cv2.medianBlur(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), 3)
    edges = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 7, 4)
    return np.where(edges[..., None] == 0, 20, flat).astype(np.uint8)


def hatching(img: np.ndarray) -> np.ndarray:
    """Ink hatching on paper: diagonal strokes where mid-tone, cross-hatch where dark."""
    grey = _grey(img)
    h, w = grey.shape
    yy, xx = np.mgrid[0:h, 0:w]
    single = ((xx + yy) % 5 == 0) & (grey < 170)
    cross = ((xx - yy) % 5 == 0) & (grey < 95)
    solid = grey < 40
    ink = single | cross | solid
    paper = np.array([245, 238, 220], np.uint8)
    out = np.where(ink[..., None], np.array([30, 30, 45], np.uint8), paper)
    return out.astype(np.uint8)


def auburn_streaks(img: np.ndarray) -> np.ndarray:
    """Hair-like wavy auburn strands synthesised over the darker regions."""
    grey = _grey(img) / 255.0
    h, w = grey.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    strands = 0.5 + 0.5 * np.sin(1.9 * xx + 2.5 * np.sin(0.21 * yy) + 6.0 * grey)
    auburn = np.array([0.62, 0.25, 0.12], np.float32)
    hair = (0.35 + 0.9 * grey[..., None]) * auburn * (0.55 + 0.45 * strands[..., None])
    weight = np.clip((0.6 - grey) / 0.3, 0.0, 1.0)[..., None]
    out = weight * hair + (1 - weight) * img.astype(np.float32) / 255.0
    return np.clip(out * 255.0, 0, 255).astype(np.uint8)


def emboss_sepia(img: np.ndarray) -> np.ndarray:
    """Relief (emboss filter) toned sepia."""
    kernel = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)
    relief = np.clip(cv2.filter2D(_grey(img), -1, kernel) * 0.5 + 128.0, 0, 255) / 255.0
    tone = np.array([1.0, 0.82, 0.6], np.float32)
    return np.clip(relief[..., None] * tone * 255.0, 0, 255).astype(np.uint8)


EDITS: tuple[Callable[[np.ndarray], np.ndarray], ...] = (
    sketch, cartoon, hatching, auburn_streaks, emboss_sepia,
)


def apply_edits(img: np.ndarray) -> np.ndarray:
    """All five edits of one crop: (5, H, W, 3) uint8."""
    return np.stack([edit(img) for edit in EDITS])
