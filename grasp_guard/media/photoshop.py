"""Photoshop image resource blocks (JPEG APP13, PNG raw profiles): what may hold pixels removed.

A resource stream is a run of ``8BIM`` records; records 0x0409 and 0x040C hold a JPEG
thumbnail of the photo, and 0x0422, 0x0423 and 0x0424 copies of its EXIF and XMP (each may
hold a thumbnail of its own; the photo's own EXIF and XMP carry that metadata): they are
removed. Record 0x0404 holds IPTC-IIM datasets, text in binary framing: its preview datasets
(2:200–2:202) are removed, and the rest is carried if its binary bytes fit the file's
:class:`OpaqueAllowance`. Records of Photoshop's own kinds (settings, print info, paths,
slices, descriptors: no pixels) are carried where no image shows in them; any other (a
plug-in's, an unknown kind) counts against the allowance and is dropped past it. A stream over
64 KB is split across consecutive APP13 segments, each starting with ``Photoshop 3.0``:
readers join them, and the JPEG codec does too.
"""

from __future__ import annotations

import struct

from .sniff import OpaqueAllowance, holds_image

PHOTOSHOP = b"Photoshop 3.0\x00"
IPTC_PREVIEW_NOTE = "IPTC preview (datasets 2:200–2:202) removed"
_THUMBNAIL_NOTE = "Photoshop thumbnail resource removed (or a copy of EXIF or XMP)"
_THUMBNAILS = frozenset({0x0409, 0x040C, 0x0422, 0x0423, 0x0424})
_IPTC = 0x0404
# Photoshop's own kinds (its documented IDs: resolution, print info and style, version,
# grid, slices, paths, descriptors, ImageReady's, print flags), none of which holds pixels
# but the thumbnails and copies above; plug-ins' (0x0FA0-0x1387) and unknown kinds are not.
_OWN = (range(0x03E8, 0x0BB9), range(0x1B58, 0x1B5B), range(0x2710, 0x2711))
_IPTC_PREVIEWS = range(200, 203)  # record 2's ObjectPreviewFileFormat, …Version, …Data
_SIGNATURES = frozenset({b"8BIM", b"MeSa", b"PHUT", b"AgHg", b"DCSR"})


def cleaned(resources: bytes, allowance: OpaqueAllowance) -> tuple[bytes, list[str]] | None:
    """The resource stream without what may hold the photo's pixels (see the module
    docstring), and notes on what went; None when the stream cannot be walked (a record
    that runs past its end, an unknown signature)."""
    out = bytearray()
    notes: list[str] = []
    pos = 0
    try:
        while pos + 12 <= len(resources):
            if resources[pos : pos + 4] not in _SIGNATURES:
                return None
            name_len = resources[pos + 6]
            size_pos = pos + 6 + name_len + 1 + ((name_len + 1) & 1)
            (size,) = struct.unpack_from(">I", resources, size_pos)
            end = size_pos + 4 + size + (size & 1)
            if end > len(resources) + (size & 1):
                return None
            (kind,) = struct.unpack_from(">H", resources, pos + 4)
            data = resources[size_pos + 4 : size_pos + 4 + size]
            kept, note = _kept(kind, data, allowance)
            if kept == data:
                out += resources[pos:end]
            elif kept is not None:
                out += resources[pos:size_pos] + struct.pack(">I", len(kept)) + kept
                out += bytes(len(kept) & 1)
            if note:
                notes.append(note)
            pos = end
    except (struct.error, IndexError):
        return None
    return bytes(out + resources[pos:]), list(dict.fromkeys(notes))


def _kept(kind: int, data: bytes,
          allowance: OpaqueAllowance) -> tuple[bytes | None, str | None]:
    """What of one record's ``data`` is carried (None: the record goes), and a note on what
    went."""
    if kind in _THUMBNAILS:
        return None, _THUMBNAIL_NOTE
    if kind == _IPTC:
        iim = iptc(data, allowance)
        if iim is None:
            return None, ("IPTC resource dropped: binary data in it may be the original's "
                          "pixels")
        return iim, None if iim == data else IPTC_PREVIEW_NOTE
    if (any(kind in own for own in _OWN) and not holds_image(data)) or allowance.admits(data):
        return data, None
    return None, (f"Photoshop resource 0x{kind:04X} dropped: its {len(data)} bytes may be the "
                  "original's pixels")


def iptc(iim: bytes, allowance: OpaqueAllowance) -> bytes | None:
    """IPTC-IIM datasets without a preview (2:200–2:202), or None when they cannot be walked
    or their binary bytes do not fit the file's ``allowance``; zero padding after the last
    is kept."""
    out, pos = bytearray(), 0
    while pos < len(iim) and iim[pos] == 0x1C:
        if pos + 5 > len(iim):
            return None
        length, head = int.from_bytes(iim[pos + 3 : pos + 5], "big"), 5
        if length & 0x8000:  # extended: the next (length & 0x7FFF) bytes hold the length
            head += length & 0x7FFF
            length = int.from_bytes(iim[pos + 5 : pos + head], "big")
        end = pos + head + length
        if end > len(iim):
            return None
        if not (iim[pos + 1] == 2 and iim[pos + 2] in _IPTC_PREVIEWS):
            out += iim[pos:end]
        pos = end
    if any(iim[pos:]):
        return None
    kept = iim if len(out) == pos else bytes(out + iim[pos:])
    return kept if allowance.readable(kept) == kept else None


def split(resources: bytes, max_payload: int) -> list[bytes]:
    """APP13 payloads of at most ``max_payload`` bytes carrying ``resources`` in turn."""
    room = max_payload - len(PHOTOSHOP)
    return [PHOTOSHOP + resources[i : i + room] for i in range(0, max(1, len(resources)), room)]
