"""Images built in memory for the media tests (small, deterministic, never on disk)."""

from __future__ import annotations

import io
import struct

import numpy as np
import piexif
import pillow_heif
from PIL import Image

HEIGHT, WIDTH = 48, 64


def gradient(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """(H, W, 3) uint8, smooth and with no symmetry: red follows x, green y, blue both."""
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([x * 4 % 256, y * 5 % 256, (x + 2 * y) % 256]).astype(np.uint8)


def protect(upright: np.ndarray) -> np.ndarray:
    """A stand-in for the defense: invert the left half (enough to show in a thumbnail)."""
    out = upright.copy()
    out[:, : out.shape[1] // 2] = 255 - out[:, : out.shape[1] // 2]
    return out


def thumbnail_jpeg(
    colour: tuple[int, int, int] = (0, 200, 0), size: tuple[int, int] = (16, 12)
) -> bytes:
    """A flat-coloured JPEG thumbnail, easy to tell apart from a regenerated one."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", quality=90)
    return out.getvalue()


def exif_dict(
    orientation: int = 1, thumbnail: bytes | None = None, maker_note: bytes | None = None
) -> dict:
    exif = {
        "0th": {
            piexif.ImageIFD.Orientation: orientation,
            piexif.ImageIFD.Make: b"GraspCam",
            piexif.ImageIFD.Model: b"Model 7",
            piexif.ImageIFD.XResolution: (300, 1),
            piexif.ImageIFD.YResolution: (300, 1),
        },
        "Exif": {
            piexif.ExifIFD.DateTimeOriginal: b"2024:05:06 07:08:09",
            piexif.ExifIFD.UserComment: b"ASCII\x00\x00\x00a comment",
            piexif.ExifIFD.FNumber: (28, 10),
        },
        "GPS": {
            piexif.GPSIFD.GPSLatitudeRef: b"N",
            piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (0, 1)),
        },
        "1st": {},
        "thumbnail": None,
    }
    if maker_note is not None:
        exif["Exif"][piexif.ExifIFD.MakerNote] = maker_note
    if thumbnail is not None:
        exif["1st"] = {
            piexif.ImageIFD.Compression: 6,
            piexif.ImageIFD.XResolution: (72, 1),
            piexif.ImageIFD.YResolution: (72, 1),
        }
        exif["thumbnail"] = thumbnail
    return exif


def exif_bytes(
    orientation: int = 1, thumbnail: bytes | None = None, maker_note: bytes | None = None
) -> bytes:
    """An ``Exif\\0\\0``-prefixed block made by piexif."""
    return piexif.dump(exif_dict(orientation, thumbnail, maker_note))


def tiff_block(orientation: int, thumbnail: bytes, order: str = "<") -> bytes:
    """A valid TIFF block piexif cannot load: its ExifIFD pointer has TIFF type 13 (IFD).

    IFD0: Orientation, Make, ExifIFD (type 13); Exif IFD: one ASCII tag; IFD1: JPEG thumbnail.
    """
    make = b"RawCam\x00\x00"
    stamp = b"2024:01:02 03:04:05\x00"

    def ifd(entries: list[tuple[int, int, int, bytes]], next_offset: int) -> bytes:
        body = struct.pack(order + "H", len(entries))
        for tag, kind, count, value in entries:
            body += struct.pack(order + "HHI", tag, kind, count) + value.ljust(4, b"\x00")
        return body + struct.pack(order + "I", next_offset)

    ifd0_at = 8
    ifd0_len = 2 + 3 * 12 + 4
    make_at = ifd0_at + ifd0_len
    exif_at = make_at + len(make)
    exif_len = 2 + 12 + 4
    stamp_at = exif_at + exif_len
    ifd1_at = stamp_at + len(stamp)
    ifd1_len = 2 + 3 * 12 + 4
    thumb_at = ifd1_at + ifd1_len

    def u16(v: int) -> bytes:
        return struct.pack(order + "H", v)

    def u32(v: int) -> bytes:
        return struct.pack(order + "I", v)

    header = (b"II" if order == "<" else b"MM") + u16(42) + u32(ifd0_at)
    ifd0 = ifd(
        [
            (0x0112, 3, 1, u16(orientation)),
            (0x010F, 2, len(make), u32(make_at)),
            (0x8769, 13, 1, u32(exif_at)),
        ],
        ifd1_at,
    )
    exif_ifd = ifd([(0x9003, 2, len(stamp), u32(stamp_at))], 0)
    ifd1 = ifd(
        [
            (0x0103, 3, 1, u16(6)),
            (0x0201, 4, 1, u32(thumb_at)),
            (0x0202, 4, 1, u32(len(thumbnail))),
        ],
        0,
    )
    block = header + ifd0 + make + exif_ifd + stamp + ifd1 + thumbnail
    assert len(header + ifd0 + make + exif_ifd + stamp + ifd1) == thumb_at
    return block


def encoded(pixels: np.ndarray, fmt: str, **kwargs: object) -> bytes:
    """``pixels`` saved by Pillow in ``fmt`` (RGB, RGBA, L or LA by shape)."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **kwargs)
    return out.getvalue()


def segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def with_segments(jpeg: bytes, *segments: bytes, after_app: bool = True) -> bytes:
    """``jpeg`` with extra marker segments inserted after its leading APPn segments."""
    pos = 2
    while after_app and jpeg[pos] == 0xFF and 0xE0 <= jpeg[pos + 1] <= 0xEF:
        pos += 2 + struct.unpack_from(">H", jpeg, pos + 2)[0]
    return jpeg[:pos] + b"".join(segments) + jpeg[pos:]


def xmp_packet(body: bytes = b"") -> bytes:
    return (
        b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="image/jpeg"'
        + body
        + b"/></rdf:RDF></x:xmpmeta>"
        + b" " * 64
        + b'<?xpacket end="w"?>'
    )


def icc_profile(size: int = 600, tag: bytes = b"grsp") -> bytes:
    """An ICC profile's structure of ``size`` bytes: its header, and one tag filling the rest
    (a private one, whose bytes count against the file's allowance, unless ``tag`` names a
    registered one, whose data is carried unchecked)."""
    data = bytes((i * 31 + 7) % 256 for i in range(size - 144))
    header = size.to_bytes(4, "big") + bytes(32) + b"acsp" + bytes(88)
    table = (1).to_bytes(4, "big") + tag + (144).to_bytes(4, "big") + len(data).to_bytes(4, "big")
    return header + table + data


def heic(pixels: np.ndarray, **kwargs: object) -> bytes:
    """``pixels`` (RGB, RGBA or L by shape) saved by pillow-heif, stored as given.

    An ``exif`` orientation tag becomes ``irot``/``imir`` transforms: ``pixels`` are the
    coded (stored) pixels, as a camera writes them.
    """
    mode = "L" if pixels.ndim == 2 else ("RGBA" if pixels.shape[2] == 4 else "RGB")
    height, width = pixels.shape[:2]
    heif = pillow_heif.from_bytes(mode, (width, height), np.ascontiguousarray(pixels).tobytes())
    out = io.BytesIO()
    heif.save(out, **kwargs)
    return out.getvalue()
