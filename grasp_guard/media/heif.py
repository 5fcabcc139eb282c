"""HEIC/HEIF through pillow-heif (libheif: libde265 decodes, x265 encodes).

libheif writes a new container, so the file is rebuilt around the protected pixels: the
primary image is re-encoded with the source's chroma subsampling, grid tile size and
orientation, at a quality matched to the source's rate (:mod:`.heif_quality`); EXIF (its
thumbnail regenerated), XMP (sanitised), the ICC and nclx colour descriptions and other
metadata items are carried. Nothing else of the source is copied, so no unprotected picture
is left behind: HEIF thumbnails are regenerated from the protected pixels at their sizes;
depth maps, auxiliary images (HDR gain maps, portrait mattes), the other top-level images of
a collection (the primary one is protected, as with MPO) and image-sequence tracks are
dropped, each said in the notes.

Orientation: libheif decodes with the ``irot``/``imir`` transforms applied, and pillow-heif
writes transforms from the EXIF (else XMP) orientation tag. The stored pixels are therefore
the upright ones under that tag: the source's own geometry whenever its transforms and tag
agree (as cameras write them), and a note when they do not.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ImageTooLargeError, UnsupportedFormatError
from . import bmff, exif, icc, xmp
from .budget import Padding, SizeMode, fit
from .exif import ExifLayout
from .heif_quality import FIRST_GUESS, match_quality, sample_regions
from .image import DecodedImage, Stored
from .orientation import ORIENTATIONS, to_stored, to_upright
from .sniff import OpaqueAllowance

try:
    import pillow_heif
except ImportError:  # the engine extra brings it; without it the codec refuses HEIF
    pillow_heif = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

AVAILABLE = pillow_heif is not None
_QUALITY_STEP = 4  # quality levels tried under a byte budget (x265 encodes are slow)
_PROBE = np.arange(6).reshape(2, 3)  # tells the eight orientations apart
HEVC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})


@dataclass(frozen=True)
class HeifParams:
    """What is passed back to libheif.

    Attributes:
        chroma: 420, 422 or 444; None for a monochrome image.
        tile_size: the source's square grid tile side; 0 for a single coded image.
        thumbnails: the longest side of each HEIF thumbnail, regenerated at encode time.
        exif: the EXIF block (``Exif`` prefix as read), or None.
        exif_layout: its layout.
        xmp: the sanitised XMP packet, or None.
        icc_profile: ICC bytes, or None; ``icc_profile_type`` is ``prof`` or ``rICC``.
        icc_profile_type: how the ICC profile was stored.
        nclx_profile: the nclx colour description as pillow-heif reads it, or None.
        metadata: other metadata items carried (pillow-heif's dicts).
        coded_orientation: the source's ``irot``/``imir`` as an EXIF orientation: maps the
            decoded pixels back onto the coded ones that ``samples`` index.
        samples: (top, left, height, width) regions of the coded pixels re-encoded to match
            the quality; ``sample_bytes`` is what the source spent on them (0: unknown).
        sample_bytes: see ``samples``.
        hevc_branded: the source names an HEVC brand (``heic``...); a file that names only
            the generic ``mif1`` keeps only generic brands (what it is sniffed as stays).
    """

    chroma: int | None
    tile_size: int
    thumbnails: tuple[int, ...]
    exif: bytes | None
    exif_layout: ExifLayout | None
    xmp: bytes | None
    icc_profile: bytes | None
    icc_profile_type: str | None
    nclx_profile: dict[str, Any] | None
    metadata: tuple[dict[str, Any], ...]
    coded_orientation: int
    samples: tuple[tuple[int, int, int, int], ...]
    sample_bytes: int
    hevc_branded: bool


def transform_orientation(properties: tuple[tuple[bytes, bytes], ...]) -> int:
    """The EXIF orientation equal to an item's ``irot``/``imir`` properties, applied in order."""
    shown = _PROBE
    for kind, payload in properties:
        if kind == b"irot" and payload:
            shown = np.rot90(shown, k=payload[0] & 3)  # anticlockwise quarter turns
        elif kind == b"imir" and payload:
            shown = shown[:, ::-1] if payload[0] & 1 else shown[::-1]
    return next(
        o
        for o in ORIENTATIONS
        if to_upright(_PROBE, o).shape == shown.shape
        and np.array_equal(to_upright(_PROBE, o), shown)
    )


def _carried_metadata(items: list[dict[str, Any]], notes: list[str],
                      unknown: OpaqueAllowance) -> tuple[dict[str, Any], ...]:
    carried = []
    for item in items:
        kind = str(item.get("type", "")).strip()
        data = item.get("data") or b""
        if "c2pa" in str(item.get("content_type", "")).lower() or kind == "jumb":
            notes.append("C2PA metadata dropped: its thumbnail and signature no longer match")
        elif not unknown.admits(data):
            notes.append(f"metadata item {kind!r} dropped: it may hold the original's pixels")
        else:
            carried.append(item)
    return tuple(carried)


def _dropped(heif_file: Any, primary: Any, data: bytes, notes: list[str]) -> None:
    """Notes for what the rebuilt container leaves out."""
    if len(heif_file) > 1:
        notes.append(
            f"{len(heif_file) - 1} other top-level image(s) dropped: only the primary image "
            "is protected and written"
        )
    if primary.info.get("depth_images"):
        notes.append(f"{len(primary.info['depth_images'])} depth map(s) dropped")
    aux = primary.info.get("aux") or {}
    if aux:
        kinds = ", ".join(sorted(aux))
        notes.append(f"{sum(len(v) for v in aux.values())} auxiliary image(s) dropped ({kinds})")
    if b"moov" in bmff.top_level_types(data):
        notes.append("image-sequence track (moov) dropped: only the still image is written")
    if primary.info.get("bit_depth", 8) > 8:
        notes.append(f"{primary.info['bit_depth']}-bit HEIF written as 8-bit")


def _open_primary(data: bytes, max_pixels: int) -> tuple[Any, Any]:
    """(the file, its primary image decoded), the pixel count checked before decoding."""
    assert pillow_heif is not None, "the codec checks AVAILABLE first"
    try:
        heif_file = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        if len(heif_file) == 0:
            raise UnsupportedFormatError(
                "HEIF without a still image (a bare image sequence) is not supported"
            )
        primary = heif_file[heif_file.primary_index]
        width, height = primary.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"{width}×{height} = {width * height} pixels exceeds the limit of {max_pixels}"
            )
        primary.load()
    except SyntaxError as e:  # pillow-heif's error for libheif's "unsupported feature"
        raise UnsupportedFormatError(f"HEIF that libheif cannot decode: {e}") from e
    return heif_file, primary


def _item_index(data: bytes) -> bmff.ItemIndex:
    """The item index, checked against the file's length (libheif reads only what it decodes)."""
    try:
        index = bmff.read_items(data)
    except ValueError as e:  # libheif read the file: only the quality match goes without
        logger.info("HEIF item index unreadable (%s): quality not matched", e)
        return bmff.ItemIndex(None, {}, {}, 0, {}, {})
    if index.data_end > len(data):
        raise ValueError(f"truncated: item data runs to byte {index.data_end} of {len(data)}")
    return index


def _exif_and_xmp(
    info: dict[str, Any], notes: list[str], allowance: OpaqueAllowance
) -> tuple[bytes | None, ExifLayout | None, bytes | None]:
    raw_exif, layout = info.get("exif"), None
    if raw_exif:
        try:
            layout = exif.parse(exif.split_prefix(raw_exif)[1], allowance)
            notes.extend(layout.notes())
        except exif.ExifError as e:
            notes.append(f"unreadable EXIF dropped ({e})")
    packet = info.get("xmp")
    if packet:
        packet, removed = xmp.sanitize(packet, allowance)
        notes.extend(xmp.notes(removed))
    return (raw_exif if layout else None), layout, packet or None


def _written_orientation(exif_block: bytes | None, packet: bytes | None, coded: int) -> int:
    """The orientation pillow-heif will write as transforms, from the metadata carried."""
    assert pillow_heif is not None
    written = pillow_heif.set_orientation({"exif": exif_block, "xmp": packet}) or 1
    return written if written in ORIENTATIONS else coded


def decode(data: bytes, *, max_pixels: int) -> Stored:
    """Read the primary image of a HEIF file with what re-encoding needs.

    Raises:
        UnsupportedFormatError: no still image (a bare image sequence), or a coding libheif
            cannot decode (AVC, JPEG...).
        ImageTooLargeError: more than ``max_pixels`` pixels, checked before decoding.
        ValueError, EOFError, RuntimeError: truncated or corrupt (the codec maps them).
    """
    heif_file, primary = _open_primary(data, max_pixels)
    index = _item_index(data)
    info = primary.info
    thumbnails = tuple(info.get("thumbnails", ()))
    notes = [
        "HEIC re-encoded by x265 at a quality matched to the source's rate"
        + (
            f"; {len(thumbnails)} HEIF thumbnail(s) regenerated from the protected pixels"
            if thumbnails
            else ""
        )
    ]
    _dropped(heif_file, primary, data, notes)
    allowance = OpaqueAllowance()  # the file's, for all its metadata
    exif_block, layout, packet = _exif_and_xmp(info, notes, allowance)
    metadata = _carried_metadata(info.get("metadata", []), notes, allowance)
    pixels = np.asarray(primary.to_pillow().convert("RGBA" if primary.has_alpha else "RGB"))
    upright = pixels[:, :, :3]
    coded = transform_orientation(
        () if index.primary is None else index.properties.get(index.primary, ())
    )
    written = _written_orientation(exif_block, packet, coded)
    if written != coded:
        notes.append(
            f"orientation transforms (irot/imir) rewritten as the orientation tag says "
            f"({written}, was {coded}); the image displays the same"
        )
    tiling = info.get("tiling")
    height, width = to_stored(upright, coded).shape[:2]
    samples, sample_bytes = sample_regions(index, tiling, (int(height), int(width)))
    if not sample_bytes:
        notes[0] = (
            f"HEIC re-encoded by x265 at quality {FIRST_GUESS} (the source's rate is unreadable)"
        )
    square = tiling and tiling["tile_width"] == tiling["tile_height"]
    params = HeifParams(
        chroma=info.get("chroma"),
        tile_size=tiling["tile_width"] if square else 0,
        thumbnails=thumbnails,
        exif=exif_block,
        exif_layout=layout,
        xmp=packet,
        icc_profile=icc.carried(info.get("icc_profile"), allowance, notes),
        icc_profile_type=info.get("icc_profile_type"),
        nclx_profile=info.get("nclx_profile"),
        metadata=metadata,
        coded_orientation=coded,
        samples=samples,
        sample_bytes=sample_bytes,
        hevc_branded=bool(HEVC_BRANDS & set(bmff.brands(data))),
    )
    alpha = None if pixels.shape[2] == 3 else to_stored(pixels[:, :, 3], written)
    return Stored(
        rgb=np.ascontiguousarray(to_stored(upright, written)),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        orientation=written,
        params=params,
        notes=notes,
    )


def _mode_and_bytes(
    params: HeifParams, rgb: np.ndarray, alpha: np.ndarray | None
) -> tuple[str, bytes]:
    """pillow-heif's mode and raw buffer: grey stays grey, alpha stays alpha."""
    planes = [rgb[:, :, :1]] if params.chroma is None else [rgb]
    if alpha is not None:
        planes.append(alpha[:, :, None])
    mode = ("L" if params.chroma is None else "RGB") + ("A" if alpha is not None else "")
    return mode, np.ascontiguousarray(np.concatenate(planes, axis=2)).tobytes()


def _encode(
    params: HeifParams, rgb: np.ndarray, alpha: np.ndarray | None, quality: int, **settings: Any
) -> bytes:
    assert pillow_heif is not None
    mode, raw = _mode_and_bytes(params, rgb, alpha)
    heif_file = pillow_heif.from_bytes(mode, (rgb.shape[1], rgb.shape[0]), raw)
    if params.chroma is not None:
        settings["chroma"] = params.chroma
    if params.nclx_profile:
        settings["nclx_profile"] = params.nclx_profile
    out = io.BytesIO()
    heif_file.save(out, quality=quality, **settings)
    return out.getvalue()


def source_quality(image: DecodedImage) -> int:
    """The quality matched to the source's rate (``FIRST_GUESS`` when its rate is unknown)."""
    params: HeifParams = image.params
    if not params.sample_bytes:
        return FIRST_GUESS
    coded = np.ascontiguousarray(to_stored(image.upright, params.coded_orientation))

    def measure(quality: int) -> int:
        total = 0
        for top, left, h, w in params.samples:
            crop = np.ascontiguousarray(coded[top : top + h, left : left + w])
            data = _encode(params, crop, None, quality, tile_size=0)
            index = bmff.read_items(data)
            total += index.coded_length(index.primary) if index.primary is not None else len(data)
        return total

    return match_quality(measure, params.sample_bytes)


def encode(
    image: DecodedImage, stored: np.ndarray, alpha: np.ndarray | None, size_mode: SizeMode
) -> bytes:
    """Re-encode protected stored-orientation pixels; quality lowered under a byte budget."""
    params: HeifParams = image.params
    quality = source_quality(image)
    logger.info("HEIF re-encoded at quality %d (matched to the source's rate)", quality)
    settings: dict[str, Any] = {
        "tile_size": params.tile_size,
        "thumbnails": list(params.thumbnails),
    }
    if params.exif is not None and params.exif_layout is not None:
        prefix, tiff = exif.split_prefix(params.exif)
        settings["exif"] = prefix + exif.protect(tiff, params.exif_layout, stored)
    if params.xmp:
        settings["xmp"] = params.xmp
    if params.icc_profile:
        settings["icc_profile"] = params.icc_profile
        settings["icc_profile_type"] = params.icc_profile_type or "prof"
    if params.metadata:
        settings["metadata"] = list(params.metadata)
    qualities = list(range(quality, -1, -_QUALITY_STEP))

    def render(level: int) -> bytes:
        data = _encode(params, stored, alpha, qualities[level], **settings)
        return data if params.hevc_branded else bmff.replace_brand(data, b"heic", b"mif1")

    return fit(
        render,
        len(qualities),
        size_mode=size_mode,
        target=len(image.source),
        padding=Padding(minimum=lambda _: bmff.FREE_BOX_MIN, pad=bmff.pad_with_free_box),
        lossless=False,
        what="HEIF",
    )
