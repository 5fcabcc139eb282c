"""Recognise an image format from its magic numbers, without decoding it."""

from __future__ import annotations

import re
import struct

from grasp_sdk.sniff import carries_image

from .jpeg_segments import find_embedded_jpegs

_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_ISOBMFF_IMAGE_BRANDS = frozenset({b"mif1", b"msf1", b"miaf"})
# Signatures of images other than JPEG and TIFF (which get a header check) inside a blob: long
# enough that one turning up by chance in metadata is not a concern. Any ISO-BMFF file counts
# (a motion photo's video holds the original frames as much as a HEIF thumbnail does): its
# ftyp box, a size under 64 KB and a brand after it, so that text saying "giftypes" is not one.
# A BMP: "BM", its size, four reserved zero bytes, its pixels' offset and a DIB header's size.
_EMBEDDED_SIGNATURE = re.compile(
    rb"\x89PNG\r\n\x1a\n|GIF8[79]a|RIFF....WEBP|\x00\x00\x00\x0cJXL \r\n\x87\n"
    rb"|\x00\x00..ftyp[\x20-\x7e]{4}|BM....\x00{4}....[\x0c\x28\x34\x38\x40\x6c\x7c]\x00{3}",
    re.DOTALL,
)
_TIFF_HEADER = re.compile(rb"II\*\x00|MM\x00\*")
_TIFF_PIXELS = frozenset({0x0111, 0x0144})  # StripOffsets, TileOffsets
_TIFF_ENTRIES = 64  # of a candidate's first directory, looked at: writers put those tags early
_TIFF_HEADERS = 64  # candidates looked at; a blob of more is taken for one holding an image


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


#: The most bytes one file carries in forms that may hold the original's pixels where no
#: signature shows them, raw or deflated, whole or split: blocks of unknown kind (private PNG
#: chunks, unknown WebP chunks or APP segments, HEIF metadata items, Photoshop resources),
#: binary bytes or long hex/base64 runs in text, comments and binary EXIF values, and bytes
#: an ICC profile's registered tags do not account for (an 18×18 RGB preview is 972 bytes).
OPAQUE_BYTES_MAX = 1024

# A payload written as text: base64 (wrapped or not, at 16 characters a line or more), or hex
# with or without separators. Words, identifiers and digests (a SHA-256 is 64 hex digits)
# are shorter than ENCODED_RUN.
# The text is first mapped to classes of characters, so that each search runs on a literal
# prefix or consumes its runs whole: linear, about 0.1 s a megabyte.
ENCODED_RUN = 128
_BASE64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-"
_HEX_CHARS = b"0123456789abcdefABCDEF"


def _classes(members: dict[bytes, bytes]) -> bytes:
    table = bytearray(b"." * 256)
    for chars, name in members.items():
        for char in chars:
            table[char] = name[0]
    return bytes(table)


_AS_BASE64 = _classes({_BASE64_CHARS: b"a", b" \t\r\n": b" "})
_AS_HEX = _classes({_BASE64_CHARS: b"x", _HEX_CHARS: b"h", b" \t\r\n,:": b"s"})
_BASE64_RUN = re.compile(b"a" * 16 + rb"a*+(?: *+a{16,}+)*+")  # tokens of 16 or more, wrapped
# Line breaks XML writes as references (Adobe's XMP Toolkit): blanked, the same length.
_XML_BREAKS = re.compile(rb"&#(?:x[aAdD]|1[03]);")
_HEX_RUN = re.compile(rb"hhs(?:s{0,2}+hhs){7}(?:s{0,2}+hhs)*+")  # "a1 b2 c3 …", "a1:b2:…"


def encoded_runs(text: bytes) -> list[tuple[int, int]]:
    """(start, end) of each hex or base64 run of :data:`ENCODED_RUN` characters or more."""
    text = _XML_BREAKS.sub(lambda m: b" " * len(m.group()), text)
    runs = [m.span() for m in _BASE64_RUN.finditer(text.translate(_AS_BASE64))]
    runs += [m.span() for m in _HEX_RUN.finditer(text.translate(_AS_HEX))]
    return sorted(run for run in runs if run[1] - run[0] >= ENCODED_RUN)


# Control bytes no text holds (NUL aside: padding, and a string's end, carries nothing).
_CONTROL = bytes([*range(1, 9), 11, 12, *range(14, 32), 127])
_HIGH = bytes(range(128, 256))


def binary_bytes(text: bytes) -> int:
    """How many bytes of ``text`` are not writing: control bytes, and in text that is not
    UTF-8 (Latin-1 or raw bytes), every byte past ASCII too."""
    count = len(text) - len(text.translate(None, _CONTROL))
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        count += len(text) - len(text.translate(None, _HIGH))
    return count


class OpaqueAllowance:
    """What one file carries in opaque forms, within :data:`OPAQUE_BYTES_MAX`."""

    def __init__(self) -> None:
        self.carried = 0

    def spend(self, n: int) -> bool:
        """Whether ``n`` more opaque bytes fit (then they count against the allowance)."""
        if self.carried + n > OPAQUE_BYTES_MAX:
            return False
        self.carried += n
        return True

    def admits(self, blob: bytes) -> bool:
        """Whether a block of unknown kind may be carried: it holds no image
        (:func:`holds_image`) and fits."""
        return not holds_image(blob) and self.spend(len(blob))

    def readable(self, text: bytes) -> bytes | None:
        """``text`` as it may be carried: each hex or base64 run of :data:`ENCODED_RUN`
        characters or more that does not fit is cut out; None when its binary bytes
        (:func:`binary_bytes`) do not fit. Images are the caller's to look for."""
        if not self.spend(binary_bytes(text)):
            return None
        kept, pos = bytearray(), 0
        for start, end in encoded_runs(text):
            if start >= pos and not self.spend(end - start):
                kept += text[pos:start]
                pos = end
        return text if pos == 0 else bytes(kept + text[pos:])


def _holds_tiff(blob: bytes) -> bool:
    """Whether ``blob`` holds a TIFF image: its header, then a first directory inside the blob
    naming strips or tiles (an EXIF block's, or a maker note's, names none)."""
    for seen, match in enumerate(_TIFF_HEADER.finditer(blob)):
        if seen == _TIFF_HEADERS:
            return True
        start = match.start()
        order = "<" if blob[start] == ord("I") else ">"
        if start + 8 > len(blob):
            break
        offset = struct.unpack_from(order + "I", blob, start + 4)[0]
        ifd = start + offset
        if offset < 8 or ifd + 2 > len(blob):
            continue
        count = min(struct.unpack_from(order + "H", blob, ifd)[0], _TIFF_ENTRIES,
                    (len(blob) - ifd - 2) // 12)
        if _TIFF_PIXELS.intersection(struct.unpack_from(f"{order}{6 * count}H", blob, ifd + 2)[::6]):
            return True
    return False


def holds_image(blob: bytes) -> bool:
    """Whether a metadata blob carries an image: a JPEG, PNG, GIF, WebP, JXL, TIFF, BMP or
    ISO-BMFF file, raw or base64 (a text property holding a preview, as XMP thumbnails do)."""
    return (_EMBEDDED_SIGNATURE.search(blob) is not None or bool(find_embedded_jpegs(blob))
            or _holds_tiff(blob) or carries_image(blob))
