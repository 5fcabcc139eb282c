"""Recognise an image format from its magic numbers, without decoding it."""

from __future__ import annotations

import re

from grasp_sdk.sniff import carries_image

from .jpeg_segments import find_embedded_jpegs

_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_ISOBMFF_IMAGE_BRANDS = frozenset({b"mif1", b"msf1", b"miaf"})
# Signatures of images other than JPEG (which gets a full header check) inside a blob: long
# enough that one turning up by chance in metadata is not a concern. Any ISO-BMFF file counts
# (a motion photo's video holds the original frames as much as a HEIF thumbnail does): its
# ftyp box, a size under 64 KB and a brand after it, so that text saying "giftypes" is not one.
_EMBEDDED_SIGNATURE = re.compile(
    rb"\x89PNG\r\n\x1a\n|GIF8[79]a|RIFF....WEBP|\x00\x00\x00\x0cJXL \r\n\x87\n"
    rb"|\x00\x00..ftyp[\x20-\x7e]{4}",
    re.DOTALL,
)


def _isobmff_format(data: bytes) -> str | None:
    """AVIF or HEIF from an ISO-BMFF ``ftyp`` box, or None for other ISO-BMFF files (video)."""
    box_size = int.from_bytes(data[0:4], "big")
    major = data[8:12]
    end = min(box_size, len(data), 4096) if box_size >= 16 else 16
    compatible = {data[i : i + 4] for i in range(16, end - 3, 4)}
    if major in _HEIF_BRANDS:
        return "HEIF"
    if major in _AVIF_BRANDS or (major in _ISOBMFF_IMAGE_BRANDS and compatible & _AVIF_BRANDS):
        return "AVIF"
    if major in _ISOBMFF_IMAGE_BRANDS or compatible & _HEIF_BRANDS:
        return "HEIF"
    return None


def sniff_format(data: bytes) -> str | None:
    """Name the image format of ``data`` from its magic bytes.

    Returns:
        ``"JPEG"`` (MPO files too: they start as a JPEG), ``"PNG"``, ``"WEBP"``, ``"AVIF"``,
        ``"HEIF"``, ``"GIF"``, ``"TIFF"`` or ``"JXL"``; None when no known signature matches.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[0:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp" and len(data) >= 16:
        return _isobmff_format(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "JXL"
    return None


#: The most bytes of blocks of unknown kind one file carries (private PNG chunks, unknown
#: WebP chunks or APP segments, HEIF metadata items), all together: more may hold the
#: original's pixels in a form no signature shows, raw or deflated, whole or split across
#: blocks (an 18×18 RGB preview is 972 bytes).
UNKNOWN_BLOCKS_MAX = 1024


class UnknownBlocks:
    """The blocks of unknown kind one file carries, within :data:`UNKNOWN_BLOCKS_MAX`."""

    def __init__(self) -> None:
        self.carried = 0

    def admits(self, blob: bytes) -> bool:
        """Whether ``blob`` may be carried: it holds no image (:func:`holds_image`) and fits
        in what is left of the file's allowance (then it counts against it)."""
        if self.carried + len(blob) > UNKNOWN_BLOCKS_MAX or holds_image(blob):
            return False
        self.carried += len(blob)
        return True


def holds_image(blob: bytes) -> bool:
    """Whether a metadata blob carries an image: a JPEG, PNG, GIF, WebP, JXL or ISO-BMFF file,
    raw or base64 (a text property holding a preview, as XMP thumbnails do)."""
    return (_EMBEDDED_SIGNATURE.search(blob) is not None or bool(find_embedded_jpegs(blob))
            or carries_image(blob))
