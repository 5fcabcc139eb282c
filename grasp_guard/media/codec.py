"""Decode an upload for protection, and re-encode the protected pixels the way it came."""

from __future__ import annotations

import io
import logging
from types import ModuleType

import numpy as np
from PIL import Image, features

from ..errors import GraspGuardError, ImageTooLargeError, InvalidImageError, UnsupportedFormatError
from . import avif, heif, jpeg, png, webp
from .budget import SizeMode
from .image import DecodedImage, Stored
from .orientation import to_stored, to_upright
from .sniff import sniff_format

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 50_000_000
_PILLOW_FORMATS = {"JPEG": ("JPEG", "MPO"), "PNG": ("PNG",), "WEBP": ("WEBP",), "AVIF": ("AVIF",)}
_HANDLERS: dict[str, ModuleType] = {
    "JPEG": jpeg,
    "MPO": jpeg,
    "PNG": png,
    "WEBP": webp,
    "AVIF": avif,
    "HEIF": heif,
}


def _check_supported(sniffed: str | None) -> str:
    if sniffed is None:
        raise InvalidImageError("not an image: no known format signature (magic bytes)")
    if sniffed == "HEIF" and not heif.AVAILABLE:
        raise UnsupportedFormatError(
            "HEIC/HEIF cannot be decoded: it needs pillow-heif, which is not installed"
        )
    if sniffed not in _HANDLERS:
        raise UnsupportedFormatError(
            f"{sniffed} is not supported: JPEG, PNG, WebP, AVIF and HEIC/HEIF are"
        )
    if sniffed == "AVIF" and not features.check("avif"):
        raise UnsupportedFormatError("AVIF cannot be decoded: this Pillow has no AVIF support")
    return sniffed


# An AVIF's AV1 frames together (tiles, alpha, a gain map, a thumbnail) may hold this many
# times the pixel limit: each frame is held to the limit, their sum to this.
_MAX_FRAMES_SHARE = 4


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.flags.writeable = False
    return array


def _decode_with_pillow(data: bytes, sniffed: str, max_pixels: int) -> tuple[str, Stored]:
    with Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS[sniffed]) as img:
        # libavif decodes each AV1 frame at its own size, not the container's
        frames = avif.frame_sizes(data) if img.format == "AVIF" else []
        for width, height in [img.size, *frames]:
            if width * height > max_pixels:
                raise ImageTooLargeError(
                    f"{width}×{height} = {width * height} pixels exceeds the limit of {max_pixels}"
                )
        decoded = sum(w * h for w, h in frames)
        if decoded > _MAX_FRAMES_SHARE * max_pixels:  # a grid's tiles, alpha, gain map...
            raise ImageTooLargeError(f"its AV1 frames hold {decoded} pixels in all, over "
                                     f"{_MAX_FRAMES_SHARE}x the limit of {max_pixels}")
        fmt = img.format or sniffed
        return fmt, _HANDLERS[fmt].decode(data, img)


def decode(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode image bytes into upright RGB pixels plus everything needed to re-encode them.

    Args:
        data: the whole file, in memory.
        max_pixels: the largest width × height accepted (decompression-bomb guard),
            checked from the header before any pixel is decoded.

    Returns:
        The decoded image; ``upright`` and ``alpha`` are read-only.

    Raises:
        InvalidImageError: empty, truncated, corrupt, or not an image.
        UnsupportedFormatError: an image we cannot re-encode faithfully (GIF, TIFF,
            animations, CMYK JPEG, HEIF without pillow-heif or with a coding libheif lacks).
        ImageTooLargeError: more than ``max_pixels`` pixels.
    """
    data = bytes(data)
    if not data:
        raise InvalidImageError("empty input: zero bytes")
    sniffed = _check_supported(sniff_format(data))
    try:
        if sniffed == "HEIF":  # pillow-heif reads it itself, not as a Pillow plugin
            fmt, stored = sniffed, heif.decode(data, max_pixels=max_pixels)
        else:
            fmt, stored = _decode_with_pillow(data, sniffed, max_pixels)
    except GraspGuardError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # Pillow's own guard (MAX_IMAGE_PIXELS) fires in open(); its warning is raised only
        # where warnings are errors. Our limit is checked right after, either way.
        raise ImageTooLargeError(f"decompression bomb: {e}") from e
    except MemoryError as e:
        raise ImageTooLargeError(f"{sniffed} image too large to decode in memory") from e
    except Exception as e:  # Pillow and its C decoders raise many types for bad bytes
        raise InvalidImageError(f"corrupt or truncated {sniffed}: {e}") from e
    for note in stored.notes:
        logger.info("%s: %s", fmt, note)
    return DecodedImage(
        format=fmt,
        upright=_read_only(to_upright(stored.rgb, stored.orientation)),
        alpha=None
        if stored.alpha is None
        else _read_only(to_upright(stored.alpha, stored.orientation)),
        orientation=stored.orientation,
        source=data,
        params=stored.params,
        notes=tuple(stored.notes),
    )


def encode(image: DecodedImage, upright: np.ndarray, *, size_mode: SizeMode = "any") -> bytes:
    """Re-encode protected upright pixels in the source's format, coding and metadata.

    The pixels are written back in their stored orientation under the original tag.

    Args:
        image: the :func:`decode` result the pixels were derived from.
        upright: (H, W, 3) uint8 RGB, the same shape as ``image.upright``.
        size_mode: ``any``; ``max``: no longer than the source; ``exact``: exactly the
            source's length (padded with a comment, chunk or box).

    Raises:
        SizeBudgetError: ``max`` or ``exact`` cannot be met.
        ValueError: ``upright`` has the wrong shape or dtype, or ``size_mode`` is unknown.
    """
    if upright.shape != image.upright.shape or upright.dtype != np.uint8:
        raise ValueError(
            f"protected pixels must be uint8 {image.upright.shape}, got {upright.dtype} {upright.shape}"
        )
    stored = np.ascontiguousarray(to_stored(upright, image.orientation))
    alpha = (
        None
        if image.alpha is None
        else np.ascontiguousarray(to_stored(image.alpha, image.orientation))
    )
    return _HANDLERS[image.format].encode(image, stored, alpha, size_mode)
