"""Recognise image bytes by their magic numbers, and tell a whole image from a piece of one.

Uploads often label images ``application/octet-stream`` (or lie), so the bytes decide.
A chunked upload (X's APPEND segments, resumable PUTs) can carry the first piece of an
image, which starts with the right magic but is not an image the service may rewrite:
:func:`is_complete` walks the container structure to tell.
"""

from __future__ import annotations

import base64
import re

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_JPEG_STANDALONE = {0x01, 0xD8, *range(0xD0, 0xD8)}
_SOI = b"\xff\xd8\xff"


def image_type(data: bytes) -> str | None:
    """The image media type of ``data`` from its magic bytes, or None if it is not one.

    Recognises JPEG, PNG, GIF, WebP, HEIC/HEIF and AVIF.
    """
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and len(data) >= 12:
        size = int.from_bytes(data[:4], "big")
        box = data[8:min(max(size, 12), 256)]
        brands = {box[i:i + 4] for i in range(0, len(box) - 3, 4)}
        if brands & {b"avif", b"avis"}:
            return "image/avif"
        if brands & _HEIF_BRANDS:
            return "image/heic"
        if brands & {b"mif1", b"msf1"}:
            return "image/heif"
    return None


_IMAGE_BRANDS = sorted(_HEIF_BRANDS | {b"avif", b"avis", b"mif1", b"msf1", b"miaf"})
# Signatures long enough (six bytes and more) that chance does not make them.
_SIGNATURES = [
    (b"\x89PNG\r\n\x1a\n", 0),
    (b"GIF87a", 0),
    (b"GIF89a", 0),
    *((b"ftyp" + brand, 4) for brand in _IMAGE_BRANDS),
]
# How each encoder writes base64's two symbols: as is, URL-safe, percent-encoded, JSON-escaped.
_SLASH = rb"(?:/|\\/|%2[Ff]|_)"
_PLUS = rb"(?:\+|%2[Bb]|-)"
# A base64 run: its symbols as any encoder writes them, and the line breaks that MIME (76
# characters a line), PEM (64) or `base64` (76) put in it, CRLF or LF: raw, JSON-escaped or
# percent-encoded.
_BASE64_RUN = re.compile(rb"(?:[A-Za-z0-9+/_\r\n-]+|\\[/rn]|%2[BbFf]|%0[AaDd])*")
_JPEG_WINDOW = 1536  # bytes of a candidate JPEG's start that decide whether it is one
# Characters of a base64 run read after a JPEG's start: enough for the window's 2048 symbols
# with escapes and line breaks among them (a stream must hold back as many: bodies._HOLD).
_BASE64_BUDGET = 4096
_MAX_JPEG_STARTS = 4096  # SOIs (raw, or base64) looked at; chance makes one in 16 MB
_JPEG_HEADER_MARKERS = frozenset(
    {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0),
     0xC4, 0xDB, 0xDD, 0xFE, *range(0xE0, 0xF0)}
)
# A comment (COM) too long to see the end of counts if what is seen of it is text.
_COMMENT = re.compile(rb"[\t\n\r\x20-\x7e]{16,}")


def _base64_pattern(signature: bytes, offset: int) -> bytes:
    """A regex of ``signature``'s base64 (at ``offset`` in its file) as any encoder writes it;
    only the whole 3-byte groups it fills."""
    skip = -offset % 3
    text = base64.b64encode(signature[skip : skip + (len(signature) - skip) // 3 * 3])
    symbols = {ord("/"): _SLASH, ord("+"): _PLUS}
    return b"".join(symbols.get(c, re.escape(bytes([c]))) for c in text)


_SURE_IMAGE = re.compile(
    b"|".join(
        [
            rb"\x89PNG\r\n\x1a\n|GIF8[79]a|RIFF....WEBP|ftyp(?:"
            + b"|".join(re.escape(b) for b in _IMAGE_BRANDS) + rb")",
            rb"UklG(?:[A-Za-z0-9+/_-]|\\/|%2[BbFf]){8}RUJQ",  # base64 of RIFF....WEBP
            *(_base64_pattern(signature, at) for signature, at in _SIGNATURES),
        ]
    ),
    re.DOTALL,
)
# A JPEG's SOI is three bytes (_SOI): a candidate must show a JPEG header after it (_jpeg_header).
_JPEG_START_BASE64 = re.compile(_base64_pattern(b"\xff\xd8\xff", 0))


def _jpeg_header(window: bytes) -> bool:
    """Whether ``window`` starts as a JPEG: SOI, fill bytes, then a header segment whose
    length lands on the next marker (or, an APPn too long to see the end of, names itself
    in ASCII: JFIF, Exif, an XMP namespace; a COM too long to see the end of shows 16 or more
    bytes, all printable ASCII)."""
    i = 2
    while i < len(window) and window[i] == 0xFF:
        i += 1
    if i + 3 > len(window) or window[i] not in _JPEG_HEADER_MARKERS or i == 2:
        return False
    marker, length = window[i], int.from_bytes(window[i + 1 : i + 3], "big")
    after = i + 1 + length
    if length < 2:
        return False
    if after < len(window):
        return window[after] == 0xFF
    if marker == 0xFE:
        return _COMMENT.fullmatch(window, i + 3) is not None
    name = window[i + 3 : i + 7]
    return 0xE0 <= marker <= 0xEF and len(name) == 4 and all(0x20 < b < 0x7F for b in name)


def _decoded(run: bytes) -> bytes:
    """The first ``_JPEG_WINDOW`` bytes of a base64 run as any encoder wrote it (see
    ``_SLASH``, ``_PLUS`` and ``_BASE64_RUN``)."""
    text = run.replace(b"\\/", b"/")
    for escaped, plain in ((b"%2F", b"/"), (b"%2f", b"/"), (b"%2B", b"+"), (b"%2b", b"+"),
                           (b"\\n", b""), (b"\\r", b""), (b"\n", b""), (b"\r", b""),
                           (b"%0A", b""), (b"%0a", b""), (b"%0D", b""), (b"%0d", b"")):
        text = text.replace(escaped, plain)
    text = text.replace(b"-", b"+").replace(b"_", b"/")
    return base64.b64decode(text[: min(len(text) // 4, _JPEG_WINDOW // 3) * 4])


def carries_image(body: bytes) -> bool:
    """Whether ``body`` holds an image anywhere: raw, or base64 (standard, URL-safe,
    percent-encoded or JSON-escaped). For a body the hook leaves alone: on a ``block`` site it
    must not go. A JPEG counts only with a header after its SOI, so that chance (one
    three-byte SOI in every 16 MB of random bytes) does not refuse a video; every start is
    looked at, one overlapping another too (``/9j`` just before ``/9j/4AAQ``), and a body of
    more than ``_MAX_JPEG_STARTS`` SOIs of either kind is taken to carry one (doubt refuses).
    A base64 run may be broken into lines (MIME, PEM, a JSON string's ``\\n``)."""
    if _SURE_IMAGE.search(body):
        return True
    start, looked = body.find(_SOI), 0
    while start >= 0:
        if looked == _MAX_JPEG_STARTS or _jpeg_header(body[start : start + _JPEG_WINDOW]):
            return True
        looked += 1
        start = body.find(_SOI, start + 1)  # every start: one may overlap the one before
    m, looked = _JPEG_START_BASE64.search(body), 0
    while m is not None:
        if looked == _MAX_JPEG_STARTS:
            return True
        run = _BASE64_RUN.match(body, m.start(), m.start() + _BASE64_BUDGET)
        if run is not None and _jpeg_header(_decoded(run.group())):
            return True
        looked += 1
        m = _JPEG_START_BASE64.search(body, m.start() + 1)
    return False


def is_complete(data: bytes, media_type: str) -> bool:
    """Whether ``data`` holds a whole image of ``media_type`` rather than a truncated piece.

    Formats without a structural check are assumed complete.
    """
    if media_type == "image/jpeg":
        return _jpeg_complete(data)
    if media_type == "image/png":
        return _png_complete(data)
    if media_type == "image/gif":
        return data.rstrip(b"\x00").endswith(b";")
    if media_type == "image/webp":
        return int.from_bytes(data[4:8], "little") + 8 <= len(data)
    if media_type in ("image/heic", "image/heif", "image/avif"):
        return _bmff_complete(data)
    return True


def _jpeg_complete(data: bytes) -> bool:
    """The image ends at its EOI, and what follows it, where it is a structure we know, is
    whole too: the frames an MPO or an Ultra HDR gain map appends, one JPEG after another,
    and a motion photo's video (ISO BMFF). A piece of such a file cut past the first EOI
    would otherwise pass for a whole photo."""
    start = 0
    while True:
        end = _jpeg_end(data, start)
        if end < 0:
            return False
        follows = data[end:end + 8]
        if follows[:3] == _SOI:
            start = end
        elif follows and len(follows) < 3 and _SOI.startswith(follows):
            return False
        else:
            return follows[4:8] != b"ftyp" or _bmff_complete(data[end:])


def _jpeg_end(data: bytes, start: int) -> int:
    """The offset just past the EOI of the JPEG at ``start``, or -1 if it has none; the
    marker segments are walked, skipping APPn, so an EXIF thumbnail's EOI does not count."""
    n = len(data)
    i = start + 2
    while i + 1 < n:
        if data[i] != 0xFF:
            return -1
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
        elif marker == 0xD9:
            return i + 2
        elif marker in _JPEG_STANDALONE:
            i += 2
        elif marker == 0xDA:
            if i + 4 > n:
                return -1
            i = _next_jpeg_marker(data, i + 2 + int.from_bytes(data[i + 2:i + 4], "big"))
            if i < 0:
                return -1
        else:
            if i + 4 > n:
                return -1
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return -1


def _next_jpeg_marker(data: bytes, start: int) -> int:
    """Offset of the next marker after entropy-coded data (skips FF00 stuffing and RSTn)."""
    j = start
    while True:
        j = data.find(b"\xff", j)
        if j < 0 or j + 1 >= len(data):
            return -1
        following = data[j + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            j += 1
            continue
        return j


def _png_complete(data: bytes) -> bool:
    i = 8
    while i + 8 <= len(data):
        length = int.from_bytes(data[i:i + 4], "big")
        kind = data[i + 4:i + 8]
        i += 12 + length
        if kind == b"IEND":
            return i <= len(data)
    return False


def _bmff_complete(data: bytes) -> bool:
    i = 0
    n = len(data)
    while i + 8 <= n:
        size = int.from_bytes(data[i:i + 4], "big")
        if size == 0:
            return True
        if size == 1:
            if i + 16 > n:
                return False
            size = int.from_bytes(data[i + 8:i + 16], "big")
        if size < 8:
            return False
        i += size
    return i == n
