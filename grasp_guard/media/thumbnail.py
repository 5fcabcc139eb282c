"""Small JPEG previews regenerated from protected pixels (EXIF thumbnails)."""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image, JpegImagePlugin

from .jpeg_segments import strip_metadata

logger = logging.getLogger(__name__)

DEFAULT_BOX = (160, 160)
DEFAULT_QUALITY = 75


def scale_qtables(qtables: list[list[int]], scale: float) -> list[list[int]]:
    """Coarser (``scale`` > 1) quantisation tables; entries stay in 1..255 (or their original max)."""
    return [[max(1, min(max(255, q), round(q * scale))) for q in table] for table in qtables]


def _coding_of(like: bytes | None) -> tuple[tuple[int, int], str, dict[str, object]]:
    """Box, mode and encoder settings of the thumbnail being replaced (defaults when unreadable)."""
    if like is not None:
        try:
            with Image.open(io.BytesIO(like), formats=["JPEG"]) as old:
                assert isinstance(old, JpegImagePlugin.JpegImageFile)
                tables = [list(t) for t in old.quantization.values()]
                if not 0 < len(tables) <= 4:  # what a JPEG writer takes
                    raise ValueError(f"{len(tables)} quantisation tables")
                sampling = JpegImagePlugin.get_sampling(old)
                settings: dict[str, object] = {"qtables": tables}
                if sampling >= 0:
                    settings["subsampling"] = sampling
                mode = "L" if old.mode == "L" else "RGB"
                return old.size, mode, settings
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
                Image.DecompressionBombWarning) as e:  # the warning, where warnings are errors
            logger.debug("old EXIF thumbnail unreadable (%s); using defaults", e)
    return DEFAULT_BOX, "RGB", {"quality": DEFAULT_QUALITY}


def jpeg_thumbnail(stored: np.ndarray, *, like: bytes | None, scale: float = 1.0) -> bytes:
    """A JPEG preview of ``stored`` that fits the box of the thumbnail ``like`` replaces.

    Args:
        stored: (H, W, 3) uint8 RGB pixels in stored orientation (thumbnails share the
            main image's orientation tag).
        like: the original thumbnail, whose size, mode, tables and subsampling are reused;
            None for a 160-pixel preview at quality 75.
        scale: quantisation multiplier (> 1 for a smaller file).

    Returns:
        A baseline JPEG without APPn segments, as EXIF thumbnails are stored.
    """
    box, mode, settings = _coding_of(like)
    preview = Image.fromarray(np.ascontiguousarray(stored), "RGB")
    preview.thumbnail(box, Image.Resampling.LANCZOS)
    if mode == "L":
        preview = preview.convert("L")
    if scale != 1.0:
        if "qtables" in settings:
            settings["qtables"] = scale_qtables(settings["qtables"], scale)  # type: ignore[arg-type]
        else:
            settings["quality"] = max(1, round(DEFAULT_QUALITY / scale))
    out = io.BytesIO()
    preview.save(out, "JPEG", optimize=True, **settings)
    return b"\xff\xd8" + strip_metadata(out.getvalue())
