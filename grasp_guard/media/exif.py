"""EXIF blocks edited in place: orientation, thumbnail regeneration, embedded previews.

Only the bytes that must change are touched, so every tag, the maker notes and their
internal offsets stay byte-identical. piexif would re-serialise the whole block instead
(moving maker notes whose offsets are absolute, dropping what it does not know, and failing
outright on some camera files), so it is not used to write.

Values that may hold the original's pixels where no signature shows them, text (ASCII, the
user comment, Windows' tags) and binary (BYTE, SBYTE, UNDEFINED), count against the file's
:class:`OpaqueAllowance` and are blanked past it. A maker note is camera data, kept whole
when it reads as vendors write theirs: a directory of known entry types, at its start or
after a vendor header, in no more bytes than one JPEG APP1 holds (cameras write the same
maker note in their JPEGs). One that does not (raw pixels, a bare file) is charged as any
binary value. Inside a directory-shaped maker note only images (JPEG, TIFF, BMP, PNG, ...)
are looked for: the bound is the vendor's layout, not the bytes of each value.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

import numpy as np

from .jpeg_segments import embedded_jpeg_end, find_embedded_jpegs
from .orientation import normalise
from .sniff import OpaqueAllowance, holds_image
from .thumbnail import jpeg_thumbnail

logger = logging.getLogger(__name__)

PREFIX = b"Exif\x00\x00"
MAX_JPEG_EXIF = 65533 - len(PREFIX)  # one APP1 segment

_ORIENTATION = 0x0112
_THUMB_OFFSET = 0x0201
_THUMB_LENGTH = 0x0202
_STRIP_OFFSETS = 0x0111
_STRIP_COUNTS = 0x0117
_TILE_OFFSETS = 0x0144
_TILE_COUNTS = 0x0145
_SUB_IFDS = 0x014A
_EXIF_IFD = 0x8769
_IMAGE_DATA = ((_STRIP_OFFSETS, _STRIP_COUNTS), (_TILE_OFFSETS, _TILE_COUNTS))
_MAX_IFDS = 64  # a block links at most this many directories here; loops and bombs stop
_MAX_PIECES = 4096  # strips and tiles in all; a block with more is dropped as unreadable
_MAX_SCANNED = 4  # tag values scanned for images, in block lengths; past it, unreadable
_MAX_ENTRIES = 8192  # entries of all directories together: a camera writes a few hundred
_BYTE, _ASCII, _SHORT, _LONG, _SBYTE, _UNDEFINED, _IFD = 1, 2, 3, 4, 6, 7, 13
_OPAQUE_TYPES = frozenset({_BYTE, _ASCII, _SBYTE, _UNDEFINED})
_USER_COMMENT = 0x9286  # an 8-byte character code, then the text
_MAKER_NOTE = 0x927C
_MAKER_HEADER = 24  # a vendor header before the maker note's directory: Nikon's is 18 bytes
_MAKER_ENTRIES = 1024  # entries in a maker note's directory: cameras write tens
_WINDOWS_TEXTS = range(0x9C9B, 0x9CA0)  # XPTitle … XPSubject: UTF-16LE
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_THUMB_SCALES = (1.0, 2.0, 4.0)  # coarser tables when the block would overflow its segment


class ExifError(ValueError):
    """The block is not a readable TIFF structure."""


@dataclass(frozen=True)
class _Entry:
    tag: int
    type: int
    count: int
    field: int  # offset of the entry's 4-byte value-or-offset field


@dataclass(frozen=True)
class ExifLayout:
    """Where the parts of a TIFF block that matter here live.

    Attributes:
        byte_order: ``"<"`` (II) or ``">"`` (MM).
        orientation: the IFD0 orientation tag, 1 when absent or out of range.
        next_ifd_field: offset of IFD0's pointer to IFD1 (None when the pointer is missing).
        has_ifd1: whether IFD0 links to an IFD1 (the thumbnail directory).
        thumbnail: (start, end) of the JPEG thumbnail, None when there is none in bounds.
        thumbnail_entries: the IFD1 offset and length entries of that thumbnail.
        strips: (start, end) of raw image data (strips or tiles) of any directory in the block.
        previews: (start, end) of other JPEG images inside the block (maker-note previews).
        directories: (start, end) of each directory's entries, kept whatever overlaps them.
        opaque: (start, end) of text and binary values holding binary data or hex or base64
            runs past the block's :class:`OpaqueAllowance` (a comment holding raw pixels).
    """

    byte_order: str
    orientation: int
    next_ifd_field: int | None
    has_ifd1: bool
    thumbnail: tuple[int, int] | None
    thumbnail_entries: tuple[_Entry, _Entry] | None
    strips: tuple[tuple[int, int], ...]
    previews: tuple[tuple[int, int], ...]
    directories: tuple[tuple[int, int], ...] = ()
    opaque: tuple[tuple[int, int], ...] = ()

    def notes(self) -> list[str]:
        """What :func:`protect` will change, in words for the report."""
        notes = []
        if self.thumbnail is not None:
            notes.append("EXIF thumbnail regenerated from the protected pixels")
        elif self.has_ifd1:
            notes.append(
                "EXIF thumbnail directory (IFD1) unlinked: no JPEG thumbnail to regenerate"
            )
        if self.strips:
            notes.append("uncompressed image data inside EXIF blanked")
        if self.previews:
            notes.append(f"{len(self.previews)} preview image(s) inside EXIF (maker notes) blanked")
        if self.opaque:
            notes.append(f"{len(self.opaque)} EXIF value(s) blanked: binary, hex or base64 "
                         "data in them may be the original's pixels")
        return notes


def split_prefix(blob: bytes) -> tuple[bytes, bytes]:
    """(``b"Exif\\0\\0"`` or ``b""``, TIFF block): JPEG APP1 and some PNG/WebP writers prefix it."""
    if blob.startswith(PREFIX):
        return PREFIX, blob[len(PREFIX) :]
    return b"", blob


def _unpack(blob: bytes, fmt: str, pos: int) -> int:
    try:
        return struct.unpack_from(fmt, blob, pos)[0]
    except struct.error as e:
        raise ExifError(f"EXIF block truncated at offset {pos}") from e


def _read_ifd(blob: bytes, offset: int, order: str) -> tuple[list[_Entry], int | None]:
    count = _unpack(blob, order + "H", offset)
    entries = [
        _Entry(
            tag=_unpack(blob, order + "H", pos),
            type=_unpack(blob, order + "H", pos + 2),
            count=_unpack(blob, order + "I", pos + 4),
            field=pos + 8,
        )
        for pos in range(offset + 2, offset + 2 + 12 * count, 12)
    ]
    if entries and entries[-1].field + 4 > len(blob):
        raise ExifError(f"IFD at offset {offset} runs past the end of the block")
    next_field = offset + 2 + 12 * count
    return entries, next_field if next_field + 4 <= len(blob) else None


def _integers(blob: bytes, entry: _Entry, order: str, limit: int | None = None) -> list[int]:
    """The values of a SHORT or LONG entry (inline or at its offset); an IFD-typed entry
    (type 13) reads as the LONGs it is. With ``limit``, only the first ``limit`` values."""
    kind = _LONG if entry.type == _IFD else entry.type
    if kind not in (_SHORT, _LONG):
        raise ExifError(f"tag 0x{entry.tag:04X} has type {entry.type}, expected SHORT or LONG")
    if entry.count == 0:
        raise ExifError(f"tag 0x{entry.tag:04X} has no value")
    code = "H" if kind == _SHORT else "I"
    size = _TYPE_SIZES[kind] * entry.count
    start = entry.field if size <= 4 else _unpack(blob, order + "I", entry.field)
    if start + size > len(blob):
        raise ExifError(f"tag 0x{entry.tag:04X} points past the end of the block")
    count = entry.count if limit is None else min(entry.count, limit)
    return list(struct.unpack_from(f"{order}{count}{code}", blob, start))


def _ranges(starts: list[int], lengths: list[int], size: int) -> tuple[tuple[int, int], ...]:
    return tuple(
        (s, min(s + n, size))
        for s, n in zip(starts, lengths, strict=False)
        if 0 < s < size and n > 0
    )


def _linked_ifds(tiff: bytes, first: int, order: str) -> list[tuple[int, list[_Entry]]]:
    """Every directory reachable from IFD0, with its offset: its chain (IFD1, IFD2, ...),
    SubIFDs and the EXIF IFD.

    A directory that cannot be read is skipped, as is one seen before or one overlapping
    another. At most ``_MAX_IFDS`` offsets are ever taken up, so a block of links to links
    costs no more.

    Raises:
        ExifError: more than ``_MAX_ENTRIES`` entries in all (no camera writes that many).
    """
    taken = {first}
    pending = [first]
    found: list[tuple[int, list[_Entry]]] = []

    def take(offset: int) -> None:
        if len(taken) < _MAX_IFDS and 8 <= offset < len(tiff) and offset not in taken:
            taken.add(offset)
            pending.append(offset)

    spans: list[tuple[int, int]] = []
    count = 0
    while pending:
        offset = pending.pop()
        try:
            entries, next_field = _read_ifd(tiff, offset, order)
        except ExifError as e:
            logger.debug("unreadable directory at offset %d (%s)", offset, e)
            continue
        end = offset + 2 + 12 * len(entries)
        if any(start < end and offset < stop for start, stop in spans):
            logger.debug("directory at offset %d overlaps another: skipped", offset)
            continue
        count += len(entries)
        if count > _MAX_ENTRIES:
            raise ExifError(f"more than {_MAX_ENTRIES} directory entries")
        spans.append((offset, end))
        found.append((offset, entries))
        if next_field is not None:
            take(_unpack(tiff, order + "I", next_field))
        for e in entries:
            if e.tag in (_SUB_IFDS, _EXIF_IFD):
                try:
                    for link in _integers(tiff, e, order, limit=_MAX_IFDS):
                        take(link)
                except ExifError:
                    continue
    return found


def _image_data(
    tiff: bytes, directories: list[tuple[int, list[_Entry]]], order: str
) -> tuple[tuple[int, int], ...]:
    """(start, end) of every directory's strips and tiles: raw pixels a thumbnail may hold.

    Raises:
        ExifError: more than ``_MAX_PIECES`` of them (no camera writes that many), or strips
            or tiles whose offsets or lengths cannot be read (their pixels could not be told
            apart from the rest).
    """
    ranges: set[tuple[int, int]] = set()
    for _, entries in directories:
        tags = {e.tag: e for e in entries}
        for offsets, counts in _IMAGE_DATA:
            if offsets not in tags:
                continue
            if tags[offsets].count + len(ranges) > _MAX_PIECES:
                raise ExifError(f"more than {_MAX_PIECES} strips or tiles")
            if counts not in tags:
                raise ExifError(f"image data at tag 0x{offsets:04X} without its byte counts")
            ranges.update(
                _ranges(
                    _integers(tiff, tags[offsets], order),
                    _integers(tiff, tags[counts], order),
                    len(tiff),
                )
            )
    return tuple(sorted(ranges))


def _text(value: bytes, tag: int, order: str) -> bytes | None:
    """A text value as UTF-8 (None where it does not decode: all of it is then binary)."""
    even = len(value) // 2 * 2  # a writer's odd last byte (a NUL) is no character
    try:
        if tag in _WINDOWS_TEXTS:
            return value[:even].decode("utf-16-le").encode()
        if tag == _USER_COMMENT and value.startswith(b"UNICODE\x00"):
            return value[8:even].decode("utf-16-le" if order == "<" else "utf-16-be").encode()
    except UnicodeDecodeError:
        return None
    return value[8:] if tag == _USER_COMMENT else value


def _reads_as_maker_note(note: bytes, block_size: int) -> bool:
    """Whether a maker note is laid out as vendors write theirs (see the module docstring):
    a directory of 1 to ``_MAKER_ENTRIES`` entries, each of a known type and a value no
    longer than the block, at an even offset up to ``_MAKER_HEADER``, in either byte order."""
    if len(note) > MAX_JPEG_EXIF:
        return False
    for at in range(0, min(_MAKER_HEADER, len(note) - 2) + 1, 2):
        for order in "<>":
            (count,) = struct.unpack_from(order + "H", note, at)
            if not 0 < count <= _MAKER_ENTRIES or at + 2 + 12 * count > len(note):
                continue
            fields = struct.unpack_from(order + "HHII" * count, note, at + 2)
            if all(kind in _TYPE_SIZES and _TYPE_SIZES[kind] * n <= block_size
                   for kind, n in zip(fields[1::4], fields[2::4], strict=True)):
                return True
    return False


def _opaque_values(tiff: bytes, directories: list[tuple[int, list[_Entry]]], order: str,
                   allowance: OpaqueAllowance) -> tuple[tuple[int, int], ...]:
    """(start, end) of the text values (ASCII tags, the user comment, Windows' tags) and
    binary ones (BYTE, SBYTE, UNDEFINED; a maker note that reads as one aside) that hold
    binary data or encoded runs past the file's ``allowance``.

    Raises:
        ExifError: values overlapping past ``_MAX_SCANNED`` block lengths in all.
    """
    values: dict[tuple[int, int], int] = {}  # (start, end) -> tag
    for _, entries in directories:
        for e in entries:
            size = _TYPE_SIZES.get(e.type, 1) * e.count
            opaque = e.type in _OPAQUE_TYPES or e.tag == _USER_COMMENT or e.tag in _WINDOWS_TEXTS
            if opaque and size > 4:
                start = _unpack(tiff, order + "I", e.field)
                if 8 <= start < len(tiff):
                    values.setdefault((start, min(start + size, len(tiff))), e.tag)
    if sum(end - start for start, end in values) > _MAX_SCANNED * len(tiff):
        raise ExifError("more overlapping text or binary values than a camera writes")
    found = []
    for (start, end), tag in sorted(values.items()):
        if tag == _MAKER_NOTE and _reads_as_maker_note(tiff[start:end], len(tiff)):
            continue
        text = _text(tiff[start:end], tag, order)
        if text is None or allowance.readable(text) != text:
            found.append((start, end))
    return tuple(found)


def _spans(directories: list[tuple[int, list[_Entry]]]) -> tuple[tuple[int, int], ...]:
    """(start, end) of each directory's own bytes: its count, entries and next pointer."""
    return tuple(sorted((at, at + 2 + 12 * len(entries) + 4) for at, entries in directories))


def parse(tiff: bytes, allowance: OpaqueAllowance | None = None) -> ExifLayout:
    """Locate orientation, thumbnail and embedded previews in a TIFF block (no ``Exif`` prefix);
    its text and binary values are held to the file's ``allowance`` (the block's own where
    None).

    Raises:
        ExifError: the header or IFD0 cannot be read.
    """
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        raise ExifError("EXIF block does not start with a TIFF header")
    order = "<" if tiff[:2] == b"II" else ">"
    if _unpack(tiff, order + "H", 2) != 42:
        raise ExifError("EXIF block has a bad TIFF magic number")
    ifd0 = _unpack(tiff, order + "I", 4)
    entries, next_field = _read_ifd(tiff, ifd0, order)
    directories = _linked_ifds(tiff, ifd0, order)
    orientation = 1
    for e in entries:
        if e.tag == _ORIENTATION and e.type == _SHORT and e.count >= 1:
            orientation = normalise(_unpack(tiff, order + "H", e.field))
    ifd1 = _unpack(tiff, order + "I", next_field) if next_field is not None else 0
    has_ifd1 = 0 < ifd1 < len(tiff)
    thumbnail = thumbnail_entries = None
    if has_ifd1:
        try:
            tags = {e.tag: e for e in _read_ifd(tiff, ifd1, order)[0]}
            if _THUMB_OFFSET in tags and _THUMB_LENGTH in tags:
                start = _integers(tiff, tags[_THUMB_OFFSET], order)[0]
                length = _integers(tiff, tags[_THUMB_LENGTH], order)[0]
                if 0 < start and 0 < length and start + length <= len(tiff):
                    # a length that stops short of the image's end would leave its tail;
                    # one past it (a pad byte counted) ends where it says
                    end = embedded_jpeg_end(tiff, start) or 0
                    thumbnail = (start, max(start + length, end))
                    thumbnail_entries = (tags[_THUMB_OFFSET], tags[_THUMB_LENGTH])
        except ExifError as e:
            logger.debug("unreadable IFD1 (%s): it will be unlinked", e)
    strips = _image_data(tiff, directories, order)
    previews = find_embedded_jpegs(tiff, skip=thumbnail)
    known = [*strips, *previews, *([thumbnail] if thumbnail else [])]
    return ExifLayout(
        byte_order=order,
        orientation=orientation,
        next_ifd_field=next_field,
        has_ifd1=has_ifd1,
        thumbnail=thumbnail,
        thumbnail_entries=thumbnail_entries,
        strips=strips,
        directories=_spans(directories),
        opaque=_opaque_values(tiff, directories, order, allowance or OpaqueAllowance()),
        previews=(*previews, *_values_holding_images(tiff, directories, order, known)),
    )


def _values_holding_images(tiff: bytes, directories: list[tuple[int, list[_Entry]]],
                           order: str, known: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(start, end) of every tag value that holds an image other than the ``known`` ones
    (base64 in an XMP packet, tag 700, or in a comment; a TIFF in a maker note). The
    block's own header, which reads as a TIFF's, is not one."""
    blanked = bytearray(tiff)
    for start, end in [(0, 8), *known]:
        blanked[start:end] = bytes(end - start)
    if not holds_image(bytes(blanked)):  # one pass over the block decides most
        return []
    values = set()
    for _, entries in directories:
        for e in entries:
            size = _TYPE_SIZES.get(e.type, 1) * e.count
            if size > 4:
                start = _unpack(tiff, order + "I", e.field)
                values.add((start, min(start + size, len(tiff))))
    if sum(end - start for start, end in values) > _MAX_SCANNED * len(tiff):
        raise ExifError("an image in a block of more overlapping values than a camera writes")
    found = [(start, end) for start, end in sorted(values)
             if 8 <= start < end and holds_image(bytes(blanked[start:end]))]
    if not found:  # the image lies outside every value: in no place a reader looks, but gone
        raise ExifError("an image outside the block's tags")
    return found


def read_orientation(blob: bytes | None) -> int:
    """The orientation tag of an EXIF block (with or without prefix); 1 when unreadable."""
    if not blob:
        return 1
    try:
        return parse(split_prefix(blob)[1]).orientation
    except ExifError:
        return 1


def _write_int(buf: bytearray, entry: _Entry, value: int, order: str) -> None:
    if entry.count != 1 or entry.type not in (_SHORT, _LONG):
        raise ExifError(f"tag 0x{entry.tag:04X} cannot be rewritten in place")
    if entry.type == _SHORT:
        if value > 0xFFFF:
            raise ExifError(f"value {value} does not fit tag 0x{entry.tag:04X} (SHORT)")
        struct.pack_into(order + "H", buf, entry.field, value)
    else:
        struct.pack_into(order + "I", buf, entry.field, value)


def _place_thumbnail(buf: bytearray, layout: ExifLayout, new: bytes) -> bytes:
    """Put ``new`` in the old thumbnail's slot (or after the block) and fix IFD1's entries."""
    assert layout.thumbnail is not None and layout.thumbnail_entries is not None
    start, end = layout.thumbnail
    out = bytearray(buf)
    if end == len(out):
        del out[start:]
        out += new
        offset = start
    elif len(new) <= end - start:
        out[start : start + len(new)] = new
        offset = start
    else:
        offset = len(out) + (len(out) & 1)  # TIFF offsets are word-aligned
        out += bytes(offset - len(out)) + new
    offset_entry, length_entry = layout.thumbnail_entries
    _write_int(out, offset_entry, offset, layout.byte_order)
    _write_int(out, length_entry, len(new), layout.byte_order)
    return bytes(out)


def protect(
    tiff: bytes, layout: ExifLayout, stored: np.ndarray | None, *, max_len: int | None = None
) -> bytes:
    """The block with no unprotected copy of the image left in it.

    The JPEG thumbnail is regenerated from ``stored`` (same box, tables and subsampling) and
    written over the old one; when it cannot be (no ``stored`` pixels, it would not fit
    ``max_len``, or its IFD1 entries cannot be rewritten) IFD1 is unlinked. Raw image data
    (any directory's strips and tiles), preview JPEGs elsewhere in the block (maker notes)
    and values holding opaque data (``layout.opaque``) are overwritten with zeros.
    Everything else, the orientation tag included, is left byte-identical.

    Args:
        tiff: the TIFF block, without the ``Exif`` prefix.
        layout: :func:`parse` of ``tiff``.
        stored: (H, W, 3) uint8 RGB protected pixels in stored orientation, or None.
        max_len: the longest block the container can hold (JPEG: one APP1 segment).
    """
    buf = bytearray(tiff)
    old_thumbnail = tiff[slice(*layout.thumbnail)] if layout.thumbnail else None
    copies = [*layout.previews, *layout.strips, *layout.opaque,
              *([layout.thumbnail] if layout.thumbnail else [])]
    for start, end in copies:
        buf[start:end] = bytes(end - start)
    for start, end in layout.directories:  # a crafted strip may claim the tags themselves
        buf[start:end] = tiff[start:end]
    if not layout.has_ifd1:
        return bytes(buf)
    if layout.thumbnail is not None and stored is not None:
        for scale in _THUMB_SCALES:
            try:
                placed = _place_thumbnail(
                    buf, layout, jpeg_thumbnail(stored, like=old_thumbnail, scale=scale)
                )
            except (ValueError, OSError) as e:  # ExifError, or the JPEG writer's refusal
                logger.info("EXIF thumbnail cannot be rewritten in place (%s): unlinking IFD1", e)
                break
            if max_len is None or len(placed) <= max_len:
                return placed
        else:
            logger.info("regenerated EXIF thumbnail does not fit the EXIF segment: unlinking IFD1")
    assert layout.next_ifd_field is not None
    struct.pack_into(layout.byte_order + "I", buf, layout.next_ifd_field, 0)
    if layout.thumbnail is not None and layout.thumbnail[1] == len(buf):
        del buf[layout.thumbnail[0] :]
    return bytes(buf)
