"""PNG text chunks that may hold a copy of the image, cleaned: XMP packets (in any of tEXt,
zTXt and iTXt) and ImageMagick's raw profiles, hex-encoded EXIF, XMP, IPTC or Photoshop
resources (``Raw profile type exif``), each rewritten without its thumbnails and embedded
previews."""

from __future__ import annotations

import zlib

from . import exif, icc, photoshop, xmp
from .png_chunks import Chunk
from .sniff import OpaqueAllowance, holds_image

TEXT_TYPES = frozenset({b"tEXt", b"zTXt", b"iTXt"})
XMP_KEYWORD = b"XML:com.adobe.xmp"
RAW_PROFILE = b"Raw profile type "
_HEX_LINE = 72  # ImageMagick's: 36 bytes a line
MAX_TEXT_BYTES = 16 << 20  # a compressed text chunk inflated past it is dropped, unread


def keyword(chunk: Chunk) -> bytes:
    return chunk.data.split(b"\x00", 1)[0]


def clean(chunk: Chunk, notes: list[str], allowance: OpaqueAllowance) -> Chunk | None:
    """The text chunk without copies of the image, or None to drop it; notes say why.
    Chunks of other keywords come back as they are, unless their text holds an image, or
    binary data or hex or base64 runs past the file's ``allowance``."""
    key = keyword(chunk)
    name = key.decode("latin-1")
    try:
        header, text, compressed = _split(chunk)
    except (ValueError, IndexError, zlib.error):
        notes.append(f"unreadable {name!r} text dropped: it may hold a preview")
        return None
    if key != XMP_KEYWORD and not key.startswith(RAW_PROFILE):
        if holds_image(text):
            notes.append(f"{name!r} text dropped: it holds an image")
            return None
        readable = allowance.readable(text)
        if readable is None:
            notes.append(f"{name!r} text dropped: it holds binary data, which may be the "
                         "original's pixels")
            return None
        if readable == text:
            return chunk
        notes.append(f"hex or base64 data cut from {name!r} text: it may be the original's "
                     "pixels")
        return _joined(chunk, header, readable, compressed)
    if key == XMP_KEYWORD:
        cleaned, removed = xmp.sanitize(text, allowance)
        notes.extend(xmp.notes(removed))
        return chunk if not removed else _joined(chunk, header, cleaned, compressed)
    profile = key[len(RAW_PROFILE) :].decode("latin-1")
    data = _raw_profile(text)
    cleaned_data = (None if data is None
                    else _clean_profile(profile.lower(), data, name, notes, allowance))
    if cleaned_data is None:
        notes.append(f"{name!r} text dropped: it may hold a preview")
        return None
    if cleaned_data == data:
        return chunk
    return _joined(chunk, header, _raw_profile_text(profile, cleaned_data), compressed)


def _split(chunk: Chunk) -> tuple[bytes, bytes, bool]:
    """(everything before the text, the text, whether it is compressed) of a text chunk."""
    key, rest = chunk.data.split(b"\x00", 1)
    if chunk.type == b"tEXt":
        return key + b"\x00", rest, False
    if chunk.type == b"zTXt":
        return key + b"\x00" + rest[:1], inflated(rest[1:]), True
    compressed, method = rest[0], rest[1]
    language, rest = rest[2:].split(b"\x00", 1)
    translated, text = rest.split(b"\x00", 1)
    header = key + b"\x00" + bytes((compressed, method)) + language + b"\x00" + translated + b"\x00"
    return header, inflated(text) if compressed else text, bool(compressed)


def inflated(data: bytes) -> bytes:
    """zlib ``data`` inflated, up to :data:`MAX_TEXT_BYTES` (a chunk made to inflate past it
    is unreadable: a bomb costs no memory).

    Raises:
        zlib.error: corrupt, or larger than that.
    """
    inflater = zlib.decompressobj()
    text = inflater.decompress(data, MAX_TEXT_BYTES)
    if inflater.unconsumed_tail:
        raise zlib.error(f"text inflates past {MAX_TEXT_BYTES} bytes")
    return text


def _joined(chunk: Chunk, header: bytes, text: bytes, compressed: bool) -> Chunk:
    return Chunk(chunk.type, header + (zlib.compress(text) if compressed else text))


def _raw_profile(text: bytes) -> bytes | None:
    """The bytes of a raw profile ("\\nNAME\\n  LENGTH\\nHEX…"), or None if it is not one."""
    parts = text.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    try:
        data = bytes.fromhex(b"".join(parts[2:]).decode("ascii"))
    except ValueError:
        return None
    return data if len(data) == int(parts[1]) else None


def _raw_profile_text(profile: str, data: bytes) -> bytes:
    hexed = data.hex()
    lines = [hexed[i : i + _HEX_LINE] for i in range(0, len(hexed), _HEX_LINE)]
    return f"\n{profile}\n{len(data):8d}\n{chr(10).join(lines)}\n".encode("ascii")


def _clean_profile(profile: str, data: bytes, name: str, notes: list[str],
                   allowance: OpaqueAllowance) -> bytes | None:
    """The profile's bytes without images, or None where they cannot be told apart (or, of
    a profile of another kind, past the file's ``allowance``)."""
    cleaned = _without_previews(profile, data, name, notes, allowance)
    return None if cleaned is None or holds_image(cleaned) else cleaned


def _without_previews(profile: str, data: bytes, name: str, notes: list[str],
                      allowance: OpaqueAllowance) -> bytes | None:
    if profile == "exif" or (profile == "app1" and data.startswith(exif.PREFIX)):
        prefix, tiff = exif.split_prefix(data)
        try:
            layout = exif.parse(tiff)
        except exif.ExifError:
            return None
        if layout.has_ifd1 or layout.strips or layout.previews:
            notes.append(f"EXIF thumbnail and previews removed from {name!r}")
        return prefix + exif.protect(tiff, layout, None)
    if profile == "xmp":
        cleaned, removed = xmp.sanitize(data, allowance)
        notes.extend(xmp.notes(removed))
        return cleaned
    if profile == "8bim":
        resources = photoshop.cleaned(data, allowance)
        if resources is not None:
            notes.extend(f"{note} from {name!r}" for note in resources[1])
        return None if resources is None else resources[0]
    if profile in ("icc", "icm"):
        return None if icc.refusal(data, allowance) else data
    if profile == "iptc":
        iim = photoshop.iptc(data, allowance)
        if iim is not None and iim != data:
            notes.append(f"{photoshop.IPTC_PREVIEW_NOTE} from {name!r}")
        return iim
    return data if allowance.admits(data) else None
