"""JPEG and MPO: same quantisation tables, subsampling and progression; metadata spliced back.

The pixels are re-encoded by Pillow (libjpeg) with the source's tables; the new stream's
coding segments then follow the source's own APPn/COM segments, carried in their order,
so JFIF/Adobe markers, ICC chunks, XMP, comments and DPI stay byte-identical. Only what
holds an unprotected copy of the image changes: the EXIF thumbnail (regenerated), JFIF
thumbnails, Photoshop thumbnails and its copies of EXIF and XMP (its other resources and
IPTC previews: :mod:`photoshop`), XMP thumbnails, extended XMP, FlashPix previews,
JUMBF/C2PA boxes, MPO secondary frames and data after the image; and any segment, comments
included, that still holds an image once cleaned (raw or base64) is dropped, as is an APP
segment of unknown kind larger than 1 KB (raw or deflated pixels show no signature).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image, JpegImagePlugin

from ..errors import UnsupportedFormatError
from . import exif, icc, photoshop, xmp
from .budget import Padding, SizeMode, fit
from .image import DecodedImage, Stored
from .jpeg_segments import (
    APP0,
    COM,
    MAX_PAYLOAD,
    MIN_PADDING,
    Segment,
    comment_padding,
    is_padding,
    split_header,
    strip_metadata,
)
from .photoshop import PHOTOSHOP
from .sniff import OpaqueAllowance, holds_image
from .thumbnail import scale_qtables

logger = logging.getLogger(__name__)

APP1, APP2, APP11, APP13, APP14 = 0xE1, 0xE2, 0xEB, 0xED, 0xEE
ICC_PROFILE = b"ICC_PROFILE\x00"
ADOBE_LENGTH = 12  # "Adobe", version, two flag words, the colour transform
XMP_NAMESPACE = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_EXTENSION = b"http://ns.adobe.com/xmp/extension/\x00"
_SCALE_LEVELS = 24  # quantisation multipliers from 1 up to all-255 tables, geometric


@dataclass(frozen=True)
class JpegParams:
    """How the source was coded, and the metadata segments to carry.

    Attributes:
        mode: ``L`` or ``RGB``.
        qtables: the quantisation tables in the order the components use them (luma's first),
            in Pillow's layout.
        subsampling: Pillow's code: 0 (4:4:4), 1 (4:2:2), 2 (4:2:0); -1 for greyscale.
        progressive: whether the source is progressive.
        keep_rgb: an Adobe-marked RGB (untransformed) JPEG, re-encoded without YCbCr.
        segments: the APPn/COM segments to write, in source order, already sanitised
            except for EXIF, whose thumbnail is regenerated at encode time.
        exif_layouts: for each of ``segments``, the EXIF layout when it is an EXIF APP1.
    """

    mode: str
    qtables: tuple[tuple[int, ...], ...]
    subsampling: int
    progressive: bool
    keep_rgb: bool
    segments: tuple[Segment, ...]
    exif_layouts: tuple[exif.ExifLayout | None, ...]


def _carry(segment: Segment, notes: list[str], unknown: OpaqueAllowance) -> Segment | None:
    """The segment as it will be written (EXIF aside), or None to drop it; notes say why.
    Whatever its kind, one that still holds an image once cleaned is dropped."""
    carried = _cleaned(segment, notes, unknown)
    if carried is not None and holds_image(carried.payload):
        name = "COM" if segment.marker == COM else f"APP{segment.marker - APP0}"
        notes.append(f"{name} segment with an embedded image dropped")
        return None
    return carried


def _cleaned(segment: Segment, notes: list[str], unknown: OpaqueAllowance) -> Segment | None:
    """The segment without the parts its kind is known to keep images in, or None; one of
    unknown kind is carried within the file's allowance (``unknown``)."""
    m, p = segment.marker, segment.payload
    if m == COM:
        return None if is_padding(p) else _readable_comment(segment, notes, unknown)
    if m == APP0 and p.startswith(b"JFIF\x00") and len(p) >= 14:
        if len(p) > 14 or p[12] * p[13]:  # a thumbnail, or bytes no reader looks at
            notes.append("JFIF thumbnail removed" if p[12] * p[13] else "JFIF segment cut to its 14 bytes")
            return Segment(m, p[:12] + b"\x00\x00")
        return segment
    if m == APP0 and p.startswith(b"JFXX\x00"):
        notes.append("JFXX thumbnail segment dropped")
        return None
    if m == APP1 and p.startswith(XMP_NAMESPACE):
        packet, removed = xmp.sanitize(p[len(XMP_NAMESPACE) :], unknown)
        notes.extend(xmp.notes(removed))
        return Segment(m, XMP_NAMESPACE + packet)
    if m == APP1 and p.startswith(XMP_EXTENSION):
        notes.append("extended XMP dropped (it carries depth maps and unprocessed photos)")
        return None
    if m == APP2 and p.startswith(b"MPF\x00"):
        return None  # the MPO note covers it
    if m == APP2 and p.startswith(b"FPXR\x00"):
        notes.append("FlashPix (FPXR) segment dropped: it may hold a preview")
        return None
    if m == APP11:
        notes.append("APP11 (JUMBF/C2PA) dropped: its thumbnail and signature no longer match")
        return None
    if _is_photoshop(segment):
        resources = photoshop.cleaned(p[len(PHOTOSHOP) :], unknown)
        if resources is None:
            notes.append("Photoshop resources (APP13) dropped: unreadable, they may hold a "
                         "thumbnail")
            return None
        notes.extend(resources[1])
        return Segment(m, PHOTOSHOP + resources[0])
    if m == APP14 and p.startswith(b"Adobe") and len(p) >= ADOBE_LENGTH:
        # Adobe's colour transform (decoders need it for RGB): its own 12 bytes, no more
        if len(p) > ADOBE_LENGTH:
            notes.append(f"Adobe APP14 segment cut to its {ADOBE_LENGTH} bytes")
        return Segment(m, p[:ADOBE_LENGTH])
    if m == APP1 and p.startswith(b"XMP\x00"):  # the short header older writers use
        packet, removed = xmp.sanitize(p[4:], unknown)
        notes.extend(xmp.notes(removed))
        return Segment(m, p[:4] + packet)
    # ICC profiles: checked whole, by _icc_refusal
    known = _is_icc(segment)
    if not known and not unknown.admits(p):
        notes.append(f"APP{m - APP0} segment of unknown kind dropped: it may hold the "
                     "original's pixels")
        return None
    return segment


def _readable_comment(segment: Segment, notes: list[str], unknown: OpaqueAllowance) -> Segment | None:
    """A comment within the file's allowance for binary bytes and encoded runs, or None."""
    text = unknown.readable(segment.payload)
    if text is None:
        notes.append("COM segment dropped: it holds binary data, which may be the original's "
                     "pixels")
        return None
    if text != segment.payload:
        notes.append("hex or base64 data cut from a COM segment: it may be the original's pixels")
    return Segment(COM, text)


def _is_icc(segment: Segment) -> bool:
    return segment.marker == APP2 and segment.payload.startswith(ICC_PROFILE)


def _icc_refusal(header: list[Segment], unknown: OpaqueAllowance) -> str | None:
    """Why the file's ICC profile (its APP2 chunks joined in their order) is not carried, or
    None when it is, or there is none."""
    chunks = sorted((s.payload[len(ICC_PROFILE) :] for s in header if _is_icc(s)),
                    key=lambda chunk: chunk[:1])
    if not chunks:
        return None
    return icc.refusal(b"".join(chunk[2:] for chunk in chunks), unknown)


def _is_photoshop(segment: Segment) -> bool:
    return segment.marker == APP13 and segment.payload.startswith(PHOTOSHOP)


def _joined_photoshop(header: list[Segment]) -> list[Segment]:
    """The header with each run of Photoshop APP13 segments joined into one (a resource
    stream over 64 KB is split across them, a record possibly cut in two)."""
    joined: list[Segment] = []
    for segment in header:
        if _is_photoshop(segment) and joined and _is_photoshop(joined[-1]):
            joined[-1] = Segment(APP13, joined[-1].payload + segment.payload[len(PHOTOSHOP) :])
        else:
            joined.append(segment)
    return joined


def _metadata(data: bytes, notes: list[str]) -> tuple[list[Segment], list[exif.ExifLayout | None]]:
    header, _ = split_header(data)
    segments: list[Segment] = []
    layouts: list[exif.ExifLayout | None] = []
    unknown = OpaqueAllowance()
    icc_refusal = _icc_refusal(header, unknown)
    if icc_refusal:
        notes.append(icc_refusal)
    for segment in _joined_photoshop(header):
        if not segment.is_metadata or (icc_refusal and _is_icc(segment)):
            continue
        if segment.marker == APP1 and segment.payload.startswith(exif.PREFIX):
            try:
                layout = exif.parse(segment.payload[len(exif.PREFIX) :], unknown)
            except exif.ExifError as e:
                notes.append(f"unreadable EXIF dropped ({e})")
                continue
            notes.extend(layout.notes())
            segments.append(segment)
            layouts.append(layout)
            continue
        carried = _carry(segment, notes, unknown)
        if carried is not None and _is_photoshop(carried) and len(carried.payload) > MAX_PAYLOAD:
            parts = photoshop.split(carried.payload[len(PHOTOSHOP) :], MAX_PAYLOAD)
            segments.extend(Segment(APP13, part) for part in parts)
            layouts.extend([None] * len(parts))
        elif carried is not None:
            segments.append(carried)
            layouts.append(None)
    return segments, layouts


def decode(data: bytes, img: Image.Image) -> Stored:
    """Read a loaded Pillow JPEG/MPO image and its source bytes (ValueError: bad header)."""
    assert isinstance(img, JpegImagePlugin.JpegImageFile)  # MPO files are a subclass
    if img.mode not in ("L", "RGB"):
        raise UnsupportedFormatError(
            f"a {img.mode} JPEG (print CMYK/YCCK) cannot be re-encoded faithfully from RGB"
        )
    notes: list[str] = []
    segments, layouts = _metadata(data, notes)
    if img.format == "MPO":
        frames = getattr(img, "n_frames", 1)
        notes.append(
            f"MPO: {frames - 1} secondary frame(s) (depth, gain map or preview) dropped, "
            "written as a plain JPEG"
        )
    elif not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        notes.append("data after the JPEG image (appended video or maker data) dropped")
    orientation = next((lay.orientation for lay in layouts if lay is not None), 1)
    sampling = JpegImagePlugin.get_sampling(img) if img.mode == "RGB" else -1
    if img.mode == "RGB" and sampling < 0:
        notes.append(
            "unusual chroma subsampling written as 4:4:4 (Pillow writes 4:4:4, 4:2:2, 4:2:0)"
        )
        sampling = 0
    # libjpeg reads a JFIF file as YCbCr whatever an Adobe marker says: so is it written
    keep_rgb = (img.mode == "RGB" and img.info.get("adobe_transform") == 0
                and "jfif" not in img.info)
    params = JpegParams(
        mode=img.mode,
        qtables=_qtables_in_use(img),
        subsampling=sampling,
        progressive=bool(img.info.get("progressive") or img.info.get("progression")),
        keep_rgb=keep_rgb,
        segments=tuple(segments),
        exif_layouts=tuple(layouts),
    )
    rgb = np.asarray(img.convert("RGB"))
    return Stored(rgb=rgb, alpha=None, orientation=orientation, params=params, notes=notes)


def _qtables_in_use(img: Image.Image) -> tuple[tuple[int, ...], ...]:
    """The quantisation tables in the order the components use them, luma's first (as
    the encoder assigns them), whatever numbers the file gave them; a 0 entry (off-spec,
    yet libjpeg reads it) is written as 1, the finest step."""
    tables = img.quantization  # type: ignore[attr-defined]
    used = [q for *_, q in getattr(img, "layer", ()) if q in tables]
    return tuple(tuple(max(1, v) for v in tables[k])
                 for k in dict.fromkeys(used or sorted(tables)))


def _protected_metadata(params: JpegParams, stored: np.ndarray) -> tuple[bytes, int]:
    """The metadata segments with EXIF protected, and where padding goes: before the first
    comment (readers that show one comment show the last), else after the metadata."""
    out = bytearray()
    padding_at = None
    for segment, layout in zip(params.segments, params.exif_layouts, strict=True):
        if layout is not None:
            tiff = exif.protect(
                segment.payload[len(exif.PREFIX) :], layout, stored, max_len=exif.MAX_JPEG_EXIF
            )
            segment = Segment(segment.marker, exif.PREFIX + tiff)
        if segment.marker == COM and padding_at is None:
            padding_at = len(out)
        out += segment.to_bytes()
    return bytes(out), len(out) if padding_at is None else padding_at


def encode(
    image: DecodedImage, stored: np.ndarray, alpha: np.ndarray | None, size_mode: SizeMode
) -> bytes:
    """Re-encode protected stored-orientation pixels as the source was coded.

    Under a byte budget the quantisation tables are scaled up (coarser) by the smallest
    factor that fits; tables, subsampling and progression otherwise stay the source's.
    """
    params: JpegParams = image.params
    pixels = Image.fromarray(np.ascontiguousarray(stored), "RGB")
    if params.mode == "L":
        pixels = pixels.convert("L")
    metadata, padding_at = _protected_metadata(params, stored)
    head = b"\xff\xd8" + metadata
    padding_at += 2
    tables = [list(t) for t in params.qtables]
    smallest = min(min(t) for t in tables)
    top = max(1.0, 255 / smallest)
    levels = _SCALE_LEVELS if top > 1.0 else 1

    def render(level: int) -> bytes:
        scale = top ** (level / (levels - 1)) if level else 1.0
        settings: dict[str, object] = {
            "qtables": scale_qtables(tables, scale) if level else tables,
            "progressive": params.progressive,
            "optimize": True,
            "keep_rgb": params.keep_rgb,
        }
        if params.subsampling >= 0:
            settings["subsampling"] = params.subsampling
        out = io.BytesIO()
        pixels.save(out, "JPEG", **settings)
        return head + strip_metadata(out.getvalue())

    def pad(data: bytes, n: int) -> bytes:
        return data[:padding_at] + comment_padding(n) + data[padding_at:]

    return fit(
        render,
        levels,
        size_mode=size_mode,
        target=len(image.source),
        padding=Padding(minimum=lambda _: MIN_PADDING, pad=pad),
        lossless=False,
        what="JPEG",
    )
