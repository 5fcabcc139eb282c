"""The decoded image the engine works on, and what a format handler hands to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIME_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
    "HEIF": "image/heic",  # libheif writes HEVC-coded files: heic brands
}


@dataclass(frozen=True, eq=False)
class Stored:
    """A format handler's decode: pixels as the file stores them, plus what re-encoding needs.

    Attributes:
        rgb: (H, W, 3) uint8 RGB in stored orientation (grey images repeated on 3 channels).
        alpha: (H, W) uint8 in stored orientation, or None.
        orientation: EXIF orientation 1–8 (1 when absent).
        params: format-specific settings and carried metadata.
        notes: what the re-encode will change, in words for the report.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    orientation: int
    params: Any
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """An upload decoded for protection, with everything needed to re-encode it faithfully.

    Attributes:
        format: the source format: ``JPEG``, ``MPO``, ``PNG``, ``WEBP``, ``AVIF`` or ``HEIF``.
        upright: (H, W, 3) uint8 RGB with the EXIF orientation applied, read-only: the
            engine protects a copy and hands it to :func:`grasp_guard.media.encode`.
        alpha: (H, W) uint8 upright alpha, or None. The engine does not change it.
        orientation: EXIF orientation 1–8 of the source, written back unchanged.
        source: the original bytes (their segments and chunks are re-used).
        params: format-specific coding settings and carried metadata.
        notes: what the re-encode changes beyond the protected pixels (thumbnails
            regenerated, frames dropped, palette expanded...), for the report.
    """

    format: str
    upright: np.ndarray
    alpha: np.ndarray | None
    orientation: int
    source: bytes
    params: Any
    notes: tuple[str, ...]

    @property
    def mime(self) -> str:
        """The Content-Type of the re-encoded image (an MPO comes back as a plain JPEG)."""
        return MIME_TYPES[self.format]

    @property
    def width(self) -> int:
        return int(self.upright.shape[1])

    @property
    def height(self) -> int:
        return int(self.upright.shape[0])
