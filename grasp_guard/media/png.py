"""PNG: same bit depth, colour type, alpha and interlacing; every other chunk carried.

The image data is rewritten (:mod:`png_filter`) and spliced between the source's own
chunks, so text (tEXt/zTXt/iTXt), iCCP, eXIf, gAMA/cHRM/sRGB/cICP, pHYs, tIME and any
small safe-to-copy private chunk stay byte-identical and in place (a larger one, or one
holding an image, may hold the original's pixels and is dropped); XMP and raw-profile text lose
only the previews they embed (:mod:`png_text`). 16-bit samples keep their
precision: the 8-bit protection delta is added ×257 to the original 16-bit values.
Palette and 1/2/4-bit grey images cannot hold protected pixels; they are expanded to
8-bit RGB(A)/grey(+alpha), and the report says so.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from ..errors import UnsupportedFormatError
from . import exif, icc, png_text
from .budget import Padding, SizeMode, fit
from .image import DecodedImage, Stored
from .orientation import to_stored
from .png_chunks import CHUNK_OVERHEAD, PADDING_TYPE, SIGNATURE, Chunk, padding_chunk, read_chunks
from .png_filter import ADAPTIVE, encode_idat
from .sniff import OpaqueAllowance

GREY, RGB, GREY_ALPHA, RGBA, PALETTE = 0, 2, 4, 6, 3
_CHANNELS = {GREY: 1, RGB: 3, GREY_ALPHA: 2, RGBA: 4}
_KNOWN = frozenset(
    {
        b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT",
        b"sRGB", b"cICP", b"mDCV", b"cLLI", b"tEXt", b"zTXt", b"iTXt", b"bKGD", b"hIST",
        b"pHYs", b"sPLT", b"eXIf", b"tIME",
    }
)  # fmt: skip
# The lengths the spec gives known chunks (bKGD and sBIT by colour type, at most these):
# a longer one carries bytes no reader looks at, which may be the original's pixels.
_FIXED_LENGTHS = {
    b"tIME": 7, b"pHYs": 9, b"gAMA": 4, b"cHRM": 32, b"sRGB": 1, b"cICP": 4, b"cLLI": 8,
    b"mDCV": 24,
}  # fmt: skip
_MAX_LENGTHS = {b"bKGD": 6, b"sBIT": 4, b"tRNS": 256, b"hIST": 256 * 2, b"PLTE": 256 * 3}
_ANIMATION = frozenset({b"acTL", b"fcTL", b"fdAT"})
_IDAT_SIZE = 1 << 16
# Lossless alternatives tried in order under a byte budget: (filter, zlib level, strategy).
_LEVELS = (
    (ADAPTIVE, 6, zlib.Z_FILTERED),
    (ADAPTIVE, 9, zlib.Z_FILTERED),
    (ADAPTIVE, 9, zlib.Z_DEFAULT_STRATEGY),
    (4, 9, zlib.Z_FILTERED),
)


@dataclass(frozen=True, eq=False)
class PngParams:
    """How the output is coded and the chunks carried around its image data.

    Attributes:
        bit_depth: 8 or 16.
        colour_type: 0 (grey), 2 (RGB), 4 (grey + alpha) or 6 (RGBA).
        interlace: Adam7 or not.
        samples: (H, W, C) stored samples (uint8 or uint16) of the source, in that layout.
        key: the tRNS transparent colour of a grey or RGB image, in sample units.
        before: chunks between IHDR and the image data, in source order.
        after: chunks between the image data and IEND.
        exif_layout: the layout of the eXIf chunk, when there is one.
    """

    bit_depth: int
    colour_type: int
    interlace: bool
    samples: np.ndarray
    key: tuple[int, ...] | None
    before: tuple[Chunk, ...]
    after: tuple[Chunk, ...]
    exif_layout: exif.ExifLayout | None


def _header(chunks: list[Chunk]) -> tuple[int, int, int, int, int]:
    if not chunks or chunks[0].type != b"IHDR" or len(chunks[0].data) != 13:
        raise ValueError("PNG does not start with a valid IHDR chunk")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0].data)
    return width, height, depth, colour, interlace


def _samples16(data: bytes, colour: int) -> np.ndarray:
    """16-bit samples in PNG channel order (Pillow reduces 16-bit colour to 8 bits)."""
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint16:
        raise ValueError("16-bit PNG image data could not be decoded")
    if decoded.ndim == 2:
        decoded = decoded[:, :, None]
    if colour == GREY:
        return decoded[:, :, :1]
    if colour == GREY_ALPHA:
        return decoded[:, :, [0, 3]] if decoded.shape[2] == 4 else decoded
    if colour == RGB:
        return decoded[:, :, 2::-1]
    return decoded[:, :, [2, 1, 0, 3]]


def _samples8(
    img: Image.Image, colour: int, depth: int, transparent: bool
) -> tuple[np.ndarray, int]:
    """8-bit samples and the output colour type (palette and low-bit grey expanded)."""
    key = img.info.get("transparency")
    if colour == GREY and depth in (2, 4) and transparent and isinstance(key, int):
        # Pillow matches the key at its own depth against samples scaled to 8 bits: none match
        grey = np.asarray(img.convert("L"))
        alpha = np.where(grey == key * 255 // ((1 << depth) - 1), 0, 255).astype(np.uint8)
        return np.stack([grey, alpha], axis=-1), GREY_ALPHA
    if colour == PALETTE or depth < 8:
        expanded = np.asarray(img.convert("RGBA" if transparent else "RGB"))
        if colour == PALETTE:
            return expanded, RGBA if transparent else RGB
        return (expanded[:, :, [0, 3]], GREY_ALPHA) if transparent else (expanded[:, :, :1], GREY)
    return np.asarray(img).reshape(img.height, img.width, -1), colour


def _to8(samples: np.ndarray) -> np.ndarray:
    if samples.dtype == np.uint8:
        return samples
    return np.round(samples / 257.0).astype(np.uint8)


def _convert_bkgd(chunk: Chunk, palette: bytes | None, depth: int) -> Chunk:
    """bKGD of a palette or low-bit grey source, expressed for the expanded image."""
    if palette is not None:
        index = chunk.data[0] * 3
        return Chunk(b"bKGD", struct.pack(">HHH", *palette[index : index + 3]))
    (grey,) = struct.unpack(">H", chunk.data[:2])
    return Chunk(b"bKGD", struct.pack(">H", round(grey * 255 / ((1 << depth) - 1))))


def _carry(
    chunk: Chunk, expanded: bool, palette: bytes | None, depth: int, notes: list[str],
    unknown: OpaqueAllowance,
) -> Chunk | None:
    """The chunk as it will be written (eXIf aside), or None to drop it; notes say why."""
    kind = chunk.type
    if kind == PADDING_TYPE:
        return None
    if expanded and kind in (b"PLTE", b"tRNS"):
        return None
    if expanded and kind == b"bKGD":
        return _convert_bkgd(chunk, palette, depth)
    if expanded and kind in (b"sBIT", b"hIST"):
        notes.append(f"{kind.decode()} dropped: it described the palette/low-bit data")
        return None
    if kind == b"caBX":
        notes.append("caBX (C2PA) dropped: its thumbnail and signature no longer match")
        return None
    if kind in png_text.TEXT_TYPES:
        return png_text.clean(chunk, notes, unknown)
    if kind == b"iCCP":
        return _checked_icc(chunk, notes, unknown)
    size = len(chunk.data)
    if size != _FIXED_LENGTHS.get(kind, size) or size > _MAX_LENGTHS.get(kind, size):
        notes.append(f"{kind.decode()} chunk dropped: longer than its kind's, it may hold the "
                     "original's pixels")
        return None
    if kind == b"sPLT" and not unknown.admits(chunk.data):  # a palette of any length
        notes.append("sPLT chunk dropped: it may hold the original's pixels")
        return None
    if kind not in _KNOWN:
        if not chunk.safe_to_copy:
            notes.append(
                f"unknown chunk {kind!r} dropped: it is not safe to copy once pixels change"
            )
            return None
        if not unknown.admits(chunk.data):
            notes.append(f"private chunk {kind!r} dropped: it may hold the original's pixels")
            return None
    return chunk


def _checked_icc(chunk: Chunk, notes: list[str], unknown: OpaqueAllowance) -> Chunk | None:
    """The iCCP chunk if its profile passes :func:`icc.refusal`, or None."""
    try:
        profile = png_text.inflated(chunk.data.split(b"\x00", 1)[1][1:])
    except (IndexError, zlib.error):
        notes.append("unreadable iCCP dropped: it may hold the original's pixels")
        return None
    refusal = icc.refusal(profile, unknown)
    if refusal:
        notes.append(refusal)
        return None
    return chunk


def _carry_all(
    chunks: list[Chunk], expanded: bool, palette: bytes | None, depth: int, notes: list[str]
) -> tuple[tuple[Chunk, ...], tuple[Chunk, ...], exif.ExifLayout | None]:
    """The chunks written before and after the image data, and the eXIf layout."""
    types = [c.type for c in chunks]
    first_idat, last_idat = types.index(b"IDAT"), len(types) - 1 - types[::-1].index(b"IDAT")
    if last_idat - first_idat + 1 != types.count(b"IDAT"):
        raise ValueError("PNG image data chunks are not consecutive")
    exif_layout = None
    unknown = OpaqueAllowance()
    before: list[Chunk] = []
    after: list[Chunk] = []
    for i, chunk in enumerate(chunks[1:-1], start=1):
        kept: Chunk | None = chunk
        if chunk.type == b"IDAT":
            continue
        if chunk.type == b"eXIf" and exif_layout is not None:
            notes.append("a second eXIf chunk dropped (a PNG holds one)")
            kept = None
        elif chunk.type == b"eXIf":
            try:
                exif_layout = exif.parse(exif.split_prefix(chunk.data)[1], unknown)
                notes.extend(exif_layout.notes())
            except exif.ExifError as e:
                notes.append(f"unreadable eXIf dropped ({e})")
                kept = None
        else:
            kept = _carry(chunk, expanded, palette, depth, notes, unknown)
        if kept is not None:
            (before if i < first_idat else after).append(kept)
    return tuple(before), tuple(after), exif_layout


def decode(data: bytes, img: Image.Image) -> Stored:
    """Read a PNG (ValueError: bad chunk stream; UnsupportedFormatError: animated)."""
    chunks = read_chunks(data)
    width, height, depth, colour, interlace = _header(chunks)
    types = {c.type for c in chunks}
    if types & _ANIMATION:
        raise UnsupportedFormatError("animated PNG (APNG) is not supported")
    if b"IDAT" not in types:
        raise ValueError("PNG has no image data")
    transparent = b"tRNS" in types
    expanded = colour == PALETTE or depth < 8
    img.load()
    if depth == 16:
        samples, out_colour = _samples16(data, colour), colour
    else:
        samples, out_colour = _samples8(img, colour, depth, transparent)
    if samples.shape[:2] != (height, width):
        raise ValueError("PNG image data does not match its header")
    samples.flags.writeable = False
    notes: list[str] = []
    if expanded:
        kind = "palette" if colour == PALETTE else f"{depth}-bit grey"
        notes.append(
            f"{kind} PNG written as 8-bit {'RGB' if colour == PALETTE else 'grey'}"
            f"{' with alpha' if transparent else ''}: protected pixels need more levels"
        )
    palette = next(c.data for c in chunks if c.type == b"PLTE") if colour == PALETTE else None
    before, after, exif_layout = _carry_all(chunks, expanded, palette, depth, notes)
    nc = _CHANNELS[out_colour]
    key = None
    alpha = None
    if out_colour in (GREY_ALPHA, RGBA):
        alpha = _to8(samples[:, :, -1])
    elif transparent and not expanded:
        trns = next(c.data for c in chunks if c.type == b"tRNS")
        key = struct.unpack(f">{nc}H", trns[: 2 * nc])
        keyed = np.all(samples == np.asarray(key, samples.dtype), axis=2)
        alpha = np.where(keyed, 0, 255).astype(np.uint8)
    rgb8 = _to8(samples[:, :, :3] if nc >= 3 else np.repeat(samples[:, :, :1], 3, axis=2))
    params = PngParams(
        bit_depth=16 if depth == 16 else 8,
        colour_type=out_colour,
        interlace=bool(interlace),
        samples=samples,
        key=key,
        before=before,
        after=after,
        exif_layout=exif_layout,
    )
    return Stored(
        rgb=np.ascontiguousarray(rgb8),
        alpha=alpha,
        orientation=exif_layout.orientation if exif_layout else 1,
        params=params,
        notes=notes,
    )


def _colour(rgb: np.ndarray, channels: int) -> np.ndarray:
    """The colour samples of ``rgb`` (H, W, 3) uint8 for 1 (grey, ITU-R 601 as Pillow) or 3 channels."""
    if channels == 3:
        return rgb
    weights = np.array([19595, 38470, 7471], np.uint32)
    return ((rgb.astype(np.uint32) @ weights + 0x8000) >> 16).astype(np.uint8)[:, :, None]


def _keep_key(samples: np.ndarray, source: np.ndarray, key: tuple[int, ...]) -> None:
    """Keep tRNS colour-key transparency exact: the same pixels transparent, no new ones."""
    k = np.asarray(key, samples.dtype)
    was_transparent = np.all(source == k, axis=2)
    samples[was_transparent] = k
    collides = np.all(samples == k, axis=2) & ~was_transparent
    first = samples[:, :, 0]
    first[collides] = np.where(first[collides] > 0, first[collides] - 1, 1)


def _new_samples(image: DecodedImage, stored: np.ndarray) -> np.ndarray:
    params: PngParams = image.params
    nc = 3 if params.colour_type in (RGB, RGBA) else 1
    colour = _colour(stored, nc)
    if params.bit_depth == 16:
        before = _colour(to_stored(image.upright, image.orientation), nc)
        delta = colour.astype(np.int32) - before
        colour = np.clip(params.samples[:, :, :nc].astype(np.int32) + delta * 257, 0, 65535).astype(
            np.uint16
        )
    if params.colour_type in (GREY_ALPHA, RGBA):
        colour = np.concatenate([colour, params.samples[:, :, nc:]], axis=2)
    else:
        colour = colour.copy()
    if params.key is not None:
        _keep_key(colour, params.samples, params.key)
    return colour


def _chunks(chunks: tuple[Chunk, ...], params: PngParams, stored: np.ndarray) -> bytes:
    out = bytearray()
    for chunk in chunks:
        if chunk.type == b"eXIf" and params.exif_layout is not None:
            prefix, tiff = exif.split_prefix(chunk.data)
            chunk = Chunk(chunk.type, prefix + exif.protect(tiff, params.exif_layout, stored))
        out += chunk.to_bytes()
    return bytes(out)


def encode(
    image: DecodedImage, stored: np.ndarray, alpha: np.ndarray | None, size_mode: SizeMode
) -> bytes:
    """Re-encode protected stored-orientation pixels with the source's depth, type and chunks.

    PNG is lossless: under a byte budget only harder zlib and filter settings are tried.
    """
    params: PngParams = image.params
    samples = _new_samples(image, stored)
    height, width = samples.shape[:2]
    ihdr = Chunk(
        b"IHDR",
        struct.pack(
            ">IIBBBBB",
            width,
            height,
            params.bit_depth,
            params.colour_type,
            0,
            0,
            int(params.interlace),
        ),
    )
    head = SIGNATURE + ihdr.to_bytes() + _chunks(params.before, params, stored)
    tail = _chunks(params.after, params, stored) + Chunk(b"IEND", b"").to_bytes()

    def render(level: int) -> bytes:
        kind, zlevel, strategy = _LEVELS[level]
        stream = encode_idat(
            samples, interlace=params.interlace, kind=kind, level=zlevel, strategy=strategy
        )
        idat = b"".join(
            Chunk(b"IDAT", stream[i : i + _IDAT_SIZE]).to_bytes()
            for i in range(0, max(len(stream), 1), _IDAT_SIZE)
        )
        return head + idat + tail

    def pad(data: bytes, n: int) -> bytes:
        return data[:-CHUNK_OVERHEAD] + padding_chunk(n) + data[-CHUNK_OVERHEAD:]

    return fit(
        render,
        len(_LEVELS),
        size_mode=size_mode,
        target=len(image.source),
        padding=Padding(minimum=lambda _: CHUNK_OVERHEAD, pad=pad),
        lossless=True,
        what="PNG",
    )
