"""WebP: lossy (VP8, quality estimated from the header) or lossless (VP8L), alpha kept.

Pillow/libwebp encode the pixels; the RIFF container is then rebuilt around the new
image chunks with the source's ICCP, EXIF and XMP chunks and any small unknown chunk, in the
order the container specification gives, so metadata stays byte-identical (save the
EXIF thumbnail and image-carrying XMP properties).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import SizeBudgetError, UnsupportedFormatError
from . import exif, icc, xmp
from .budget import Padding, SizeMode, fit
from .exif import ExifLayout
from .image import DecodedImage, Stored
from .sniff import OpaqueAllowance
from .webp_quality import estimate_quality

DEFAULT_QUALITY = 80  # libwebp's default, used when the VP8 header cannot be read
PADDING_FOURCC = b"GRPD"
_IMAGE = frozenset({b"ALPH", b"VP8 ", b"VP8L"})
_ANIMATION = frozenset({b"ANIM", b"ANMF"})
_ICC, _ALPHA, _EXIF, _XMP = 0x20, 0x10, 0x08, 0x04
_VP8X_SIZE = 18
_CHUNK_HEADER = 8
# Lossless alternatives under a byte budget: (quality = effort, method).
_LOSSLESS_LEVELS = ((80, 4), (100, 5), (100, 6))


@dataclass(frozen=True)
class WebpChunk:
    """One RIFF chunk: FourCC and payload."""

    fourcc: bytes
    data: bytes

    def to_bytes(self) -> bytes:
        return (
            self.fourcc
            + struct.pack("<I", len(self.data))
            + self.data
            + b"\x00" * (len(self.data) & 1)
        )


@dataclass(frozen=True)
class WebpParams:
    """How the source was coded and the chunks carried around its image data.

    Attributes:
        lossless: a VP8L image.
        quality: the lossy quality estimated from the VP8 header (``DEFAULT_QUALITY``
            when unreadable); None for lossless.
        extended: the source used the extended (VP8X) layout.
        icc, exif, xmp: the carried chunks, or None (XMP already sanitised).
        unknown: other chunks, kept in order after the metadata.
        exif_layout: the EXIF layout, when there is EXIF.
    """

    lossless: bool
    quality: int | None
    extended: bool
    icc: WebpChunk | None
    exif: WebpChunk | None
    xmp: WebpChunk | None
    unknown: tuple[WebpChunk, ...]
    exif_layout: ExifLayout | None


def read_chunks(data: bytes) -> list[WebpChunk]:
    """The chunks of a RIFF/WEBP file (ValueError when truncated or malformed)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("missing RIFF/WEBP header")
    end = 8 + struct.unpack_from("<I", data, 4)[0]
    if end > len(data):
        raise ValueError("WebP truncated: RIFF size runs past the data")
    chunks, pos = [], 12
    while pos + _CHUNK_HEADER <= end:
        fourcc, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if pos + _CHUNK_HEADER + size > end:
            raise ValueError(f"WebP chunk {fourcc!r} truncated")
        chunks.append(WebpChunk(fourcc, data[pos + 8 : pos + 8 + size]))
        pos += _CHUNK_HEADER + size + (size & 1)
    return chunks


def _assemble(
    image_chunks: list[WebpChunk],
    carried: list[WebpChunk],
    extended: bool,
    size: tuple[int, int],
    alpha: bool,
) -> bytes:
    """A RIFF/WEBP file: simple (one image chunk) or extended (VP8X, ICCP, ALPH, image, EXIF, XMP, others)."""
    if not extended and not carried and len(image_chunks) == 1:
        body = image_chunks[0].to_bytes()
    else:
        flags = _ALPHA if alpha else 0
        for chunk in carried:
            flags |= {b"ICCP": _ICC, b"EXIF": _EXIF, b"XMP ": _XMP}.get(chunk.fourcc, 0)
        width, height = size
        vp8x = WebpChunk(
            b"VP8X",
            bytes((flags, 0, 0, 0))
            + (width - 1).to_bytes(3, "little")
            + (height - 1).to_bytes(3, "little"),
        )
        icc = [c for c in carried if c.fourcc == b"ICCP"]
        rest = [c for c in carried if c.fourcc != b"ICCP"]
        body = b"".join(c.to_bytes() for c in [vp8x, *icc, *image_chunks, *rest])
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _carry(
    chunks: list[WebpChunk], notes: list[str]
) -> tuple[
    WebpChunk | None, WebpChunk | None, WebpChunk | None, list[WebpChunk], ExifLayout | None
]:
    icc_chunk = exif_chunk = xmp_chunk = layout = None
    unknown = []
    allowance = OpaqueAllowance()
    for chunk in chunks:
        if chunk.fourcc in _IMAGE or chunk.fourcc in (b"VP8X", PADDING_FOURCC):
            continue
        if chunk.fourcc == b"ICCP":
            icc_chunk = chunk if icc.carried(chunk.data, allowance, notes) else None
        elif chunk.fourcc == b"EXIF":
            try:
                layout = exif.parse(exif.split_prefix(chunk.data)[1], allowance)
            except exif.ExifError as e:
                notes.append(f"unreadable EXIF dropped ({e})")
                continue
            notes.extend(layout.notes())
            exif_chunk = chunk
        elif chunk.fourcc == b"XMP ":
            packet, removed = xmp.sanitize(chunk.data, allowance)
            notes.extend(xmp.notes(removed))
            xmp_chunk = WebpChunk(chunk.fourcc, packet)
        elif chunk.fourcc == b"C2PA":
            notes.append("C2PA chunk dropped: its thumbnail and signature no longer match")
        elif not allowance.admits(chunk.data):
            notes.append(f"unknown chunk {chunk.fourcc!r} dropped: it may hold the original's "
                         "pixels")
        else:
            unknown.append(chunk)
    return icc_chunk, exif_chunk, xmp_chunk, unknown, layout


def decode(data: bytes, img: Image.Image) -> Stored:
    """Read a WebP (ValueError: bad container; UnsupportedFormatError: animated)."""
    chunks = read_chunks(data)
    fourccs = {c.fourcc for c in chunks}
    if fourccs & _ANIMATION or getattr(img, "n_frames", 1) > 1:
        raise UnsupportedFormatError("animated WebP is not supported")
    if not fourccs & {b"VP8 ", b"VP8L"}:
        raise ValueError("WebP has no image chunk")
    notes: list[str] = []
    lossless = b"VP8L" in fourccs
    quality = None
    if not lossless:
        quality = estimate_quality(next(c.data for c in chunks if c.fourcc == b"VP8 "))
        if quality is None:
            notes.append(f"lossy WebP quality unreadable: re-encoded at {DEFAULT_QUALITY}")
            quality = DEFAULT_QUALITY
    icc, exif_chunk, xmp_chunk, unknown, layout = _carry(chunks, notes)
    img.load()
    pixels = np.asarray(img.convert("RGBA") if img.mode not in ("RGB", "RGBA") else img)
    params = WebpParams(
        lossless=lossless,
        quality=quality,
        extended=b"VP8X" in fourccs,
        icc=icc,
        exif=exif_chunk,
        xmp=xmp_chunk,
        unknown=tuple(unknown),
        exif_layout=layout,
    )
    alpha = pixels[:, :, 3].copy() if pixels.shape[2] == 4 else None
    return Stored(
        rgb=np.ascontiguousarray(pixels[:, :, :3]),
        alpha=alpha,
        orientation=layout.orientation if layout else 1,
        params=params,
        notes=notes,
    )


def _protected_exif(params: WebpParams, stored: np.ndarray) -> WebpChunk | None:
    if params.exif is None or params.exif_layout is None:
        return None
    prefix, tiff = exif.split_prefix(params.exif.data)
    return WebpChunk(b"EXIF", prefix + exif.protect(tiff, params.exif_layout, stored))


def encode(
    image: DecodedImage, stored: np.ndarray, alpha: np.ndarray | None, size_mode: SizeMode
) -> bytes:
    """Re-encode protected stored-orientation pixels as the source was coded.

    Lossy images use the estimated quality, lowered under a byte budget; lossless ones
    stay lossless (only more effort is tried) and fail the budget rather than degrade.
    """
    params: WebpParams = image.params
    if size_mode == "exact" and len(image.source) % 2:
        raise SizeBudgetError(
            f"a WebP file has an even length: cannot pad to {len(image.source)} bytes"
        )
    if alpha is not None:
        pixels = Image.fromarray(np.ascontiguousarray(np.dstack([stored, alpha])), "RGBA")
    else:
        pixels = Image.fromarray(np.ascontiguousarray(stored), "RGB")
    carried = [
        c for c in (params.icc, _protected_exif(params, stored), params.xmp) if c is not None
    ]
    carried += list(params.unknown)
    if params.lossless:
        settings = [
            {"lossless": True, "quality": q, "method": m, "exact": True}
            for q, m in _LOSSLESS_LEVELS
        ]
    else:
        assert params.quality is not None
        settings = [
            {"quality": q, "method": 4, "alpha_quality": 100} for q in range(params.quality, -1, -1)
        ]

    def render(level: int) -> bytes:
        out = io.BytesIO()
        pixels.save(out, "WEBP", **settings[level])
        image_chunks = [c for c in read_chunks(out.getvalue()) if c.fourcc in _IMAGE]
        return _assemble(image_chunks, carried, params.extended, pixels.size, alpha is not None)

    def minimum(data: bytes) -> int:
        return _CHUNK_HEADER if data[12:16] == b"VP8X" else _CHUNK_HEADER + _VP8X_SIZE

    def pad(data: bytes, n: int) -> bytes:
        chunks = read_chunks(data)
        image_chunks = [c for c in chunks if c.fourcc in _IMAGE]
        others = [c for c in chunks if c.fourcc not in _IMAGE and c.fourcc != b"VP8X"]
        filler = n - _CHUNK_HEADER - (0 if data[12:16] == b"VP8X" else _VP8X_SIZE)
        others.append(WebpChunk(PADDING_FOURCC, bytes(filler)))
        return _assemble(image_chunks, others, True, pixels.size, alpha is not None)

    return fit(
        render,
        len(settings),
        size_mode=size_mode,
        target=len(image.source),
        padding=Padding(minimum=minimum, pad=pad),
        lossless=params.lossless,
        what="WebP",
    )
