"""AVIF through Pillow's libavif binding (decode with dav1d/aom, encode with aom).

libavif rebuilds the whole container, so this is the least faithful format: the chroma
subsampling is read back from the ``av1C`` box and kept, ICC and XMP are passed through,
the nclx colour primaries and transfer are written back into libavif's own description,
EXIF is passed through but Pillow moves its orientation into ``irot``/``imir`` boxes
(and reads it back from them), and the source's quality is not recorded anywhere, so a
fixed default is used. Thumbnails and auxiliary items (depth, gain maps) are not carried.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image

from ..errors import InvalidImageError, UnsupportedFormatError
from . import av1, bmff, exif, icc, xmp
from .bmff import boxes
from .budget import Padding, SizeMode, fit
from .exif import ExifLayout
from .image import DecodedImage, Stored
from .sniff import OpaqueAllowance

DEFAULT_QUALITY = 80
_QUALITY_STEP = 5  # quality levels tried under a byte budget (AVIF encodes are slow)
_CONTAINERS = {b"meta": 4, b"iprp": 0, b"ipco": 0}  # box types to descend into: header extra bytes
_HEADER_BYTES = 64 * 1024  # of an item's data, where its sequence header is read
_SRGB_COLOUR = bytes([0, 1, 0, 13])  # nclx primaries BT.709, transfer sRGB: libavif's own


@dataclass(frozen=True)
class AvifParams:
    """What is passed back to libavif.

    Attributes:
        subsampling: ``4:2:0``, ``4:2:2``, ``4:4:4`` or ``4:0:0`` (monochrome).
        exif: the EXIF block Pillow read (orientation merged from irot/imir), or None.
        exif_layout: its layout.
        icc_profile: ICC bytes, or None.
        xmp: the sanitised XMP packet, or None.
        colour: the source's nclx colour primaries and transfer characteristics (4 bytes)
            where libavif would write others (Display P3, PQ or HLG), or None.
    """

    subsampling: str
    exif: bytes | None
    exif_layout: ExifLayout | None
    icc_profile: bytes | None
    xmp: bytes | None
    colour: bytes | None = None


def _properties(data: bytes, kind: bytes, start: int = 0,
                end: int | None = None) -> list[tuple[int, int]]:
    """Where the payload of every ``kind`` box under meta/iprp/ipco starts and ends."""
    found = []
    for child, lo, hi in boxes(data, start, end):
        if child == kind:
            found.append((lo, hi))
        elif child in _CONTAINERS:
            found.extend(_properties(data, kind, lo + _CONTAINERS[child], hi))
    return found


def _av1_configs(data: bytes) -> list[bytes]:
    """Every ``av1C`` payload under meta/iprp/ipco."""
    return [data[lo:hi] for lo, hi in _properties(data, b"av1C")]


def _nclx_at(data: bytes) -> int | None:
    """Where the first ``colr`` box of kind ``nclx`` has its colour primaries (then the
    transfer characteristics, the matrix and the range), or None."""
    return next((lo + 4 for lo, hi in _properties(data, b"colr")
                 if hi - lo >= 11 and data[lo:lo + 4] == b"nclx"), None)


def _colour(data: bytes) -> bytes | None:
    """The source's colour primaries and transfer characteristics (4 bytes of its nclx
    description) where they are not libavif's own (sRGB's: 1 and 13), else None."""
    at = _nclx_at(data)
    colour = data[at:at + 4] if at is not None else None
    return colour if colour != _SRGB_COLOUR else None


def _with_colour(data: bytes, colour: bytes | None) -> bytes:
    """``data`` (libavif's output) described with ``colour``: the same pixel values meant in
    the source's primaries and transfer (matrix and range stay the encoder's, which it used)."""
    at = None if colour is None else _nclx_at(data)
    return data if at is None or colour is None else data[:at] + colour + data[at + 4:]


def _coding(data: bytes) -> tuple[str, int]:
    """(chroma subsampling, bit depth) of the colour item, from its ``av1C`` box."""
    configs = [c for c in _av1_configs(data) if len(c) >= 3]
    colour = [c for c in configs if not c[2] & 0x10] or configs
    if not colour:
        return "4:2:0", 8
    flags = colour[0][2]
    depth = 12 if flags & 0x20 else 10 if flags & 0x40 else 8
    if flags & 0x10:
        return "4:0:0", depth
    subsampling = {(1, 1): "4:2:0", (1, 0): "4:2:2", (0, 0): "4:4:4"}.get(
        ((flags >> 3) & 1, (flags >> 2) & 1), "4:2:0"
    )
    return subsampling, depth


def frame_sizes(data: bytes) -> list[tuple[int, int]]:
    """The frame size each AV1 item's sequence header declares (colour, alpha, tiles): what
    libavif decodes, whatever ``ispe`` says; from the item's data (all its extents) or
    else its ``av1C`` configuration.

    Raises:
        InvalidImageError: an AV1 item whose frame size cannot be read.
        ValueError: the item index is malformed.
    """
    items = bmff.read_items(data)
    sizes = []
    for item, kind in items.types.items():
        if kind != b"av01":
            continue
        head = b"".join(data[start : start + length]
                        for start, length in items.extents.get(item, ()))[:_HEADER_BYTES]
        configs = [payload[4:] for box, payload in items.properties.get(item, ()) if box == b"av1C"]
        size = None
        for obus in (head, *configs):
            try:
                size = av1.frame_size(obus)
            except ValueError:
                continue
            if size is not None:
                break
        if size is None:
            raise InvalidImageError(f"AV1 item {item} declares no readable frame size")
        sizes.append(size)
    return sizes


def decode(data: bytes, img: Image.Image) -> Stored:
    """Read an AVIF (UnsupportedFormatError: an image sequence)."""
    if getattr(img, "n_frames", 1) > 1:
        raise UnsupportedFormatError("animated AVIF (image sequence) is not supported")
    subsampling, depth = _coding(data)
    notes = [
        (
            f"AVIF re-encoded by libavif at quality {DEFAULT_QUALITY} (the source's is not "
            "recorded); thumbnails and auxiliary items are not carried"
        )
    ]
    if depth > 8:
        notes.append(f"{depth}-bit AVIF written as 8-bit")
    layout = None
    allowance = OpaqueAllowance()  # the file's, for all its metadata
    raw_exif = img.info.get("exif")
    if raw_exif:
        try:
            layout = exif.parse(exif.split_prefix(raw_exif)[1], allowance)
            notes.extend(layout.notes())
        except exif.ExifError as e:
            notes.append(f"unreadable EXIF dropped ({e})")
            raw_exif = None
        else:
            if not _writer_takes(raw_exif):
                notes.append("EXIF dropped: the AVIF writer cannot rewrite it (a mistyped tag)")
                layout = None
    packet = img.info.get("xmp")
    if packet:
        packet, removed = xmp.sanitize(packet, allowance)
        notes.extend(xmp.notes(removed))
    img.load()
    pixels = np.asarray(img.convert("RGBA" if "A" in img.mode else "RGB"))
    params = AvifParams(
        subsampling=subsampling,
        exif=raw_exif if layout is not None else None,
        exif_layout=layout,
        icc_profile=icc.carried(img.info.get("icc_profile"), allowance, notes),
        xmp=packet or None,
        colour=_colour(data),
    )
    return Stored(
        rgb=np.ascontiguousarray(pixels[:, :, :3]),
        alpha=pixels[:, :, 3].copy() if pixels.shape[2] == 4 else None,
        orientation=layout.orientation if layout else 1,
        params=params,
        notes=notes,
    )


def _writer_takes(raw_exif: bytes) -> bool:
    """Whether Pillow's AVIF writer can write this EXIF: it moves the Orientation tag into the
    container and re-serialises the rest, which fails on a tag of the wrong type. Checked
    at decode, before any protection work is spent on a photo that could not be written."""
    tags = Image.Exif()
    try:
        tags.load(raw_exif)
        if ExifTags.Base.Orientation in tags:
            tags.pop(ExifTags.Base.Orientation)
            tags.tobytes()
    except Exception:  # noqa: BLE001 - its serialiser raises TypeError, struct.error, ...
        return False
    return True


def encode(
    image: DecodedImage, stored: np.ndarray, alpha: np.ndarray | None, size_mode: SizeMode
) -> bytes:
    """Re-encode protected stored-orientation pixels; quality lowered under a byte budget."""
    params: AvifParams = image.params
    if alpha is not None:
        pixels = Image.fromarray(np.ascontiguousarray(np.dstack([stored, alpha])), "RGBA")
    else:
        pixels = Image.fromarray(np.ascontiguousarray(stored), "RGB")
    subsampling = params.subsampling
    if subsampling == "4:0:0":
        if alpha is None:
            pixels = pixels.convert("L")
        else:
            subsampling = "4:4:4"  # libavif has no grey + alpha input through Pillow
    settings: dict[str, object] = {"subsampling": subsampling}
    if params.exif is not None and params.exif_layout is not None:
        prefix, tiff = exif.split_prefix(params.exif)
        settings["exif"] = prefix + exif.protect(tiff, params.exif_layout, stored)
    if params.icc_profile:
        settings["icc_profile"] = params.icc_profile
    if params.xmp:
        settings["xmp"] = params.xmp
    qualities = list(range(DEFAULT_QUALITY, -1, -_QUALITY_STEP))

    def render(level: int) -> bytes:
        out = io.BytesIO()
        pixels.save(out, "AVIF", quality=qualities[level], **settings)
        return _with_colour(out.getvalue(), params.colour)

    return fit(
        render,
        len(qualities),
        size_mode=size_mode,
        target=len(image.source),
        padding=Padding(minimum=lambda _: bmff.FREE_BOX_MIN, pad=bmff.pad_with_free_box),
        lossless=False,
        what="AVIF",
    )
