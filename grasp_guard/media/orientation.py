"""EXIF orientation (tag 0x0112): stored pixels ↔ upright pixels, all eight values.

The stored array is what the file holds; the upright array is what a viewer shows after
applying the tag. Arrays are (H, W, ...) with any trailing channel axes.
"""

from __future__ import annotations

import numpy as np

ORIENTATIONS = range(1, 9)

# Orientations 6 and 8 are rotations by a quarter turn, inverse to each other; the other six
# (identity, the two mirrors, the half turn, transpose and transverse) are their own inverse.
_INVERSE = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}


def normalise(orientation: int) -> int:
    """A tag value outside 1–8 (0, garbage) means "as stored", like every viewer does."""
    return orientation if orientation in ORIENTATIONS else 1


def to_upright(stored: np.ndarray, orientation: int) -> np.ndarray:
    """Apply the tag: what a viewer shows (matches ``PIL.ImageOps.exif_transpose``)."""
    o = normalise(orientation)
    if o == 1:
        return stored
    if o == 2:
        return stored[:, ::-1]
    if o == 3:
        return stored[::-1, ::-1]
    if o == 4:
        return stored[::-1, :]
    if o == 5:
        return stored.swapaxes(0, 1)
    if o == 6:
        return np.rot90(stored, k=-1)
    if o == 7:
        return stored[::-1, ::-1].swapaxes(0, 1)
    return np.rot90(stored, k=1)


def to_stored(upright: np.ndarray, orientation: int) -> np.ndarray:
    """Undo the tag: the array to write so that a viewer shows ``upright``."""
    return to_upright(upright, _INVERSE[normalise(orientation)])
