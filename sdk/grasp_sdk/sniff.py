"""Recognise image bytes by their magic numbers, and tell a whole image from a piece of one.

Uploads often label images ``application/octet-stream`` (or lie), so the bytes decide.
A chunked upload (X's APPEND segments, resumable PUTs) can carry the first piece of an
image, which starts with the right magic but is not an image the service may rewrite:
:func:`is_complete` walks the container structure to tell.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from urllib.parse import unquote_to_bytes

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
# Signatures long enough (six bytes and more) that chance does not make them, and the bits of
# them that are known (RIFF....WEBP: not the size).
_SIGNATURES = [
    (b"\x89PNG\r\n\x1a\n", None),
    (b"GIF87a", None),
    (b"GIF89a", None),
    (b"RIFF\0\0\0\0WEBP", b"\xff\xff\xff\xff\0\0\0\0\xff\xff\xff\xff"),
    *((b"ftyp" + brand, None) for brand in _IMAGE_BRANDS),
]
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# How each encoder writes base64's two symbols: as is, URL-safe, percent-encoded, JSON-escaped.
_SLASHES = [b"/", rb"\\/", b"%2[Ff]", b"_"]
_SLASH = b"(?:" + b"|".join(_SLASHES) + b")"
_PLUS = rb"(?:\+|%2[Bb]|-)"
# The line breaks that MIME (76 characters a line), PEM (64) or `base64` (76) put in a base64
# run: CR, LF, raw, JSON-escaped or percent-encoded; up to two (CRLF) between two symbols.
_NEWLINES = [rb"[\r\n]", rb"\\[rn]", rb"%0[AaDd]"]
_NEWLINE = b"(?:" + b"|".join(_NEWLINES) + b")"
_BREAK = _NEWLINE + b"{0,2}"
# A base64 run: its symbols as any encoder writes them, and line breaks.
_BASE64_RUN = re.compile(rb"(?:[A-Za-z0-9+/_\r\n-]+|\\[/rn]|%2[BbFf]|%0[AaDd])*")
_JPEG_WINDOW = 1536  # bytes of a candidate JPEG's start that decide whether it is one
# Characters of a base64 run read from a JPEG's start (the symbol before the match, see
# _run_start): enough for the window's 2052 symbols with escapes and line breaks among
# them (a stream must hold back as many: bodies._HOLD).
_BASE64_BUDGET = 4096
# JPEG starts (raw SOIs, or base64 ones) looked at, each kind: chance makes a raw SOI once in
# 16 MB, a base64 one once in 11M symbols (see _JPEG_STARTS).
_MAX_JPEG_STARTS = 4096
_JPEG_HEADER_MARKERS = frozenset(
    {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0),
     0xC4, 0xDB, 0xDD, 0xFE, *range(0xE0, 0xF0)}
)
_COMMENT_SEEN = 16  # bytes of a comment (COM) too long to see the end of that tell it is text
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # all but tab, LF and CR


def _symbol(mask: int, bits: int) -> bytes:
    """A regex of a base64 symbol whose bits under ``mask`` are ``bits``, as any encoder
    writes it."""
    values = [value for value in range(64) if value & mask == bits]
    letters = bytes(_ALPHABET[value] for value in values if value < 62)
    forms = [letters if len(letters) == 1 else b"[" + letters + b"]"] if letters else []
    forms += [_PLUS] * (62 in values) + [_SLASH] * (63 in values)
    return forms[0] if len(forms) == 1 else b"(?:" + b"|".join(forms) + b")"


def _base64_start(
    signature: bytes, align: int, mask: bytes | None = None
) -> tuple[tuple[int, int], list[bytes]]:
    """``signature`` (the bits of it that ``mask`` sets) in base64, starting ``align`` bytes
    into a 3-byte group of the encoded data: the regexes of its symbols from the first it
    wholly pins to the last it pins, and, at ``align`` 1 or 2, the (mask, bits) that the
    symbol before them pins (4 bits, or 2), ``(0, 0)`` at ``align`` 0."""
    mask = mask or b"\xff" * len(signature)
    pad = -(align + len(signature)) % 3
    known = int.from_bytes(bytes(align) + mask + bytes(pad), "big")
    value = int.from_bytes(bytes(align) + signature + bytes(pad), "big") & known
    count = (align + len(signature) + pad) // 3 * 4
    sextets = [(known >> 6 * i & 63, value >> 6 * i & 63) for i in reversed(range(count))]
    sextets = sextets[align:]  # the symbols of the bytes before the signature: nothing pinned
    while not sextets[-1][0]:
        sextets.pop()
    before = sextets.pop(0) if align else (0, 0)
    return before, [_symbol(m, bits) for m, bits in sextets]


def _written(symbols: list[bytes]) -> list[bytes]:
    """Regexes of ``symbols`` one after another, a line break allowed between two."""
    return [symbols[0], _then([symbols[1]]), *(_BREAK + s for s in symbols[2:])]


def _then(alternatives: list[bytes]) -> bytes:
    """A regex of a line break or none, then any of ``alternatives``: written out so that each
    of its own alternatives starts with a character, and the regex engine turns a start that
    goes no further away at once."""
    either = b"|".join(alternatives)
    breaks = [newline + _NEWLINE + b"?(?:" + either + b")" for newline in _NEWLINES]
    return b"(?:" + b"|".join([either, *breaks]) + b")"


def _alternatives(sequences: list[list[bytes]]) -> list[bytes]:
    """Regexes that together match any of ``sequences`` of regexes (one after another), one
    for each first regex, so that common starts are shared."""
    branches: dict[bytes, list[list[bytes]]] = {}
    for pieces in sequences:
        branches.setdefault(pieces[0], []).append(pieces[1:])
    return [first + _group(_alternatives(rests)) if all(rests) else first
            for first, rests in branches.items()]


def _group(alternatives: list[bytes]) -> bytes:
    return alternatives[0] if len(alternatives) == 1 else b"(?:" + b"|".join(alternatives) + b")"


# A JPEG's SOI is three bytes (_SOI): a candidate must show a JPEG header after it (_jpeg_header).
# In base64 from a group's start it is /9j/ (24 bits); 1 or 2 bytes into a group, it and the
# first two bits (11) of the marker byte after it (0xC0 and above, or fill) pin 26 bits, 4 or
# 2 of them in the symbol before the regex's (see _run_start).
_JPEG_STARTS = [
    _base64_start(_SOI, 0),
    *(_base64_start(_SOI + b"\xc0", align, b"\xff\xff\xff\xc0") for align in (1, 2)),
]
# The first 16 values of a JSON array of byte values (Dart's jsonEncode of a Uint8List,
# Gson's signed byte[]; grasp_sdk.byte_arrays), pretty-printed too, or percent-encoded in a
# form (URLSearchParams writes `%5B255%2C216`): 2.1 KB at most, under what a streamed body
# holds back (bodies._HOLD). The first three are an image's (JPEG, PNG, GIF, RIFF, an ftyp
# box's size), unsigned or signed.
_SPACE = rb"(?:[ \t\r\n]{0,64}|(?:\+|%20|%0[AaDd]|%09){0,16})"
_COMMA = _SPACE + rb"(?:,|%2[Cc])" + _SPACE
_ARRAY_HEAD = re.compile(
    rb"(?:\[|%5[Bb])" + _SPACE + rb"(?:"
    + b"|".join(_COMMA.join(start.split(b",")) for start in (
        b"255,216,255", b"-1,-40,-1", b"137,80,78", b"-119,80,78", b"71,73,70", b"82,73,70",
        b"0,0,0"))
    + rb")(?:" + _COMMA + rb"-?\d{1,3}){13}")
# The same of a typed array as JSON.stringify writes it, an object of its indices
# ({"0":255,"1":216,...}: a Uint8Array, read back with Object.values).
_OBJECT_HEAD = re.compile(rb"\{" + _SPACE + _COMMA.join(
    rb'"%d"' % i + _SPACE + b":" + _SPACE + rb"-?\d{1,3}" for i in range(16)))
# Where an image starts, one regex so that a body is searched once: a signature, raw or in
# base64 at each of the three offsets into a 3-byte group an image can start at (gRPC-web
# text and base64'd containers put it at any), each pinning 44 bits or more (GIF 1 byte into
# a group: 48 less the 4 of the symbol before); or a base64 SOI, in a group whose number is
# 1 + its offset into a group, plus a multiple of 3 (it is repeated for each way to write its
# `/` and the break after it). Each alternative starts with a character, so that the regex
# engine skips to those at once.
_IMAGE_START = re.compile(
    b"|".join(
        [
            rb"\x89PNG\r\n\x1a\n|GIF8[79]a|RIFF....WEBP|ftyp(?:"
            + b"|".join(re.escape(b) for b in _IMAGE_BRANDS) + rb")",
            *_alternatives([_written(_base64_start(signature, align, mask)[1])
                            for signature, mask in _SIGNATURES for align in range(3)]),
            *(slash + _then([s[1] + b"(" + b"".join(_BREAK + x for x in s[2:]) + b")"
                             for _, s in _JPEG_STARTS])
              for slash in _SLASHES),
        ]
    ),
    re.DOTALL,
)
_SYMBOL_BEFORE = re.compile(rb"(%2[BbFf]|\\/|[A-Za-z0-9+/_-])" + _BREAK + rb"\Z")
_BEFORE_WIDTH = 9  # characters of a symbol and a line break: %2F%0D%0A


def _jpeg_header(window: bytes, rest: bytes = b"") -> bool:
    """Whether ``window`` starts as a JPEG: SOI, fill bytes, then a header segment whose
    length lands on the next marker, in the window or in ``rest`` (the bytes after it, where
    there are any), or, an APPn too long to see the end of, names itself: two ASCII
    characters (JFIF, Exif, an XMP namespace, MPF, C2PA's JUMBF ``JP``); a COM too long to
    see the end of shows text, see :func:`_comment_text`."""
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
    if after - len(window) < len(rest):
        return rest[after - len(window)] == 0xFF
    if marker == 0xFE:
        return _comment_text(window[i + 3 :])
    name = window[i + 3 : i + 5]
    return 0xE0 <= marker <= 0xEF and len(name) == 2 and all(0x20 < b < 0x7F for b in name)


def _comment_text(seen: bytes) -> bool:
    """Whether ``seen``, the start of a comment, is text: 16 bytes or more of UTF-8 (the last
    character may be cut off), no control characters but tab, LF and CR."""
    if len(seen) < _COMMENT_SEEN:
        return False
    try:
        text = seen.decode()
    except UnicodeDecodeError as error:
        if error.reason != "unexpected end of data":  # not a character cut off at the end
            return False
        text = seen[: error.start].decode()
    return _CONTROL.search(text) is None


def _plain(text: bytes) -> bytes:
    """Base64 as any encoder wrote it (see ``_SLASH``, ``_PLUS`` and ``_BASE64_RUN``), as
    plain base64 with no line breaks."""
    text = text.replace(b"\\/", b"/")
    for escaped, plain in ((b"%2F", b"/"), (b"%2f", b"/"), (b"%2B", b"+"), (b"%2b", b"+"),
                           (b"\\n", b""), (b"\\r", b""), (b"\n", b""), (b"\r", b""),
                           (b"%0A", b""), (b"%0a", b""), (b"%0D", b""), (b"%0d", b"")):
        text = text.replace(escaped, plain)
    return text.replace(b"-", b"+").replace(b"_", b"/")


def _decoded(run: bytes, align: int) -> bytes:
    """The first ``_JPEG_WINDOW`` bytes of a base64 run whose first symbol is symbol ``align``
    (from 0) of its 4-symbol group (see ``_JPEG_STARTS``): the group is decoded from its
    start, and the ``align`` bytes before the run's own drop out."""
    text = b"A" * align + _plain(run)
    return base64.b64decode(text[: min(len(text) // 4, _JPEG_WINDOW // 3 + 1) * 4])[
        align : align + _JPEG_WINDOW
    ]


def _run_start(body: bytes, at: int, align: int) -> int:
    """Where the base64 run of a JPEG start that ``_IMAGE_START`` matched at ``at`` begins:
    there, or for an SOI ``align`` (1 or 2) bytes into a group, at the symbol before, which
    must hold the SOI's first bits (see ``_JPEG_STARTS``); -1 where it does not."""
    if not align:
        return at
    (mask, bits), _ = _JPEG_STARTS[align]
    before = _SYMBOL_BEFORE.search(body, max(at - _BEFORE_WIDTH, 0), at)
    if before is None or _ALPHABET.index(_plain(before.group(1))) & mask != bits:
        return -1
    return before.start()


def carries_image(body: bytes) -> bool:
    """Whether ``body`` holds an image anywhere: raw, or base64 (standard, URL-safe,
    percent-encoded or JSON-escaped) from any byte of the encoded data on, not only a 3-byte
    group's first, or in any writing of bytes as text that a server reads back (see
    :func:`_writings`). For a body the hook leaves alone: on a ``block`` site it must not go."""
    return any(_shows_image(view) for view in _writings(body))


def _writings(body: bytes, depth: int = 2) -> Iterator[bytes]:
    """``body``, then the bytes a server reads back where it writes bytes as text, each of
    those in turn (``depth`` writings deep): percent-encoded (``requests``' form of a bytes
    value, ``http_build_query``), UTF-16 or UTF-32 text (.NET's ``Encoding.Unicode``), a
    binary string (a byte a character: ``readAsBinaryString``, as UTF-8 or ``\\u00XX``
    escapes), a JSON string's text where it is JSON again (an escaped backslash: PHP's
    ``\\\\\\/`` for ``/``, JSON written inside a JSON string), and hex runs from an
    image's signature on (``bytes.hex()``, Postgres ``\\x``)."""
    yield body
    if depth:
        for read in (_percent_decoded, _wide_text_as_utf8, _binary_string, _json_unescaped):
            view = read(body)
            if view is not None:
                yield from _writings(view, depth - 1)
    yield from _hex_runs(body)


# bytes percent-encoded one after another, as a form writes binary (chance in other bytes:
# once in 10^19)
_PERCENT_RUN = re.compile(rb"%[0-9A-Fa-f]{2}%[0-9A-Fa-f]{2}%[0-9A-Fa-f]{2}")  # not (...){3}:
# written out, the search skips to each % at C speed (30 times faster)


def _percent_decoded(body: bytes) -> bytes | None:
    return unquote_to_bytes(body) if _PERCENT_RUN.search(body) else None


# UTF-32 first: its little-endian mark starts as UTF-16's does
_MARKS = ((b"\xff\xfe\0\0", "utf-32-le"), (b"\0\0\xfe\xff", "utf-32-be"),
          (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# where a text of characters under U+0100 (a JSON body's start) has its zero bytes, without
# a mark: over the first _WIDE_HEAD bytes, so that a video's box size (00 00 00 18) is no
# UTF-32
_ZEROS = (("utf-16-le", (False, True)), ("utf-16-be", (True, False)),
          ("utf-32-le", (False, True, True, True)), ("utf-32-be", (True, True, True, False)))
_WIDE_HEAD = 64


def _wide_text_as_utf8(body: bytes) -> bytes | None:
    """UTF-16 or UTF-32 text, by its mark or its zero bytes, as UTF-8; None for other bytes."""
    for mark, codec in _MARKS:
        if body.startswith(mark):
            return body[len(mark):].decode(codec, "replace").encode("utf-8", "replace")
    head = body[:_WIDE_HEAD]
    for codec, zeros in _ZEROS:
        if len(head) >= len(zeros) and all(
                (b == 0) == zeros[i % len(zeros)] for i, b in enumerate(head)):
            return body.decode(codec, "replace").encode("utf-8", "replace")
    return None


# an image's signature in a binary string, in UTF-8 or escaped in JSON: JPEG's ÿØÿ, PNG's
# \x89PNG, WebP's RIFF (its size's four characters written any way) and WEBP; the others'
# are ASCII, found in the body as it is
_BINARY_SIGNATURE = re.compile(
    rb"\xc3\xbf\xc3\x98\xc3\xbf|\xc2\x89PNG|\\u00[Ff][Ff]\\u00[Dd]8\\u00[Ff][Ff]|\\u0089PNG"
    rb"|RIFF.{4,24}WEBP", re.DOTALL)
_JSON_ESCAPE = re.compile(r'\\(?:u([0-9A-Fa-f]{4})|(["\\/bfnrt]))')
_JSON_ESCAPED = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
                 "t": "\t"}


def _binary_string(body: bytes) -> bytes | None:
    """Text whose characters are bytes (JSON's escapes read), as those bytes; a character
    past U+00FF is ``?``. None for a body with no image's signature written so."""
    if not _BINARY_SIGNATURE.search(body):
        return None
    return _json_unescape(body.decode("utf-8", "replace")).encode("latin-1", "replace")


def _json_unescape(text: str) -> str:
    """``text`` with JSON's string escapes read."""
    return _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1)
                            else _JSON_ESCAPED[m.group(2)], text)


def _hex(data: bytes) -> bytes:
    """A regex of ``data`` in hex of either case (not ``(?i)``: it slows the search)."""
    return re.sub(rb"[a-f]", lambda m: b"[" + m.group() + m.group().upper() + b"]",
                  data.hex().encode())


# an escape escaped, what base64 in JSON written inside a JSON string shows that the body's
# own scan cannot read through: a slash escaped inside (\\/, or PHP's \\\/ throughout), a
# line break (\\n), a \\u escape
_ESCAPED_TWICE = re.compile(rb"\\\\(?:\\?/|[nru])")


def _json_unescaped(body: bytes) -> bytes | None:
    """A JSON string's escapes read, where the body is UTF-8 text that escapes an escape:
    JSON whose strings hold JSON, one level down; None where it is not."""
    if not _ESCAPED_TWICE.search(body):
        return None
    try:
        text = body.decode("utf-8")  # binary fails at once: its copy would only cost time
    except UnicodeDecodeError:
        return None
    return _json_unescape(text).encode("utf-8", "replace")


_HEX_START = re.compile(b"|".join([
    _hex(_SOI), _hex(b"\x89PNG\r\n\x1a\n"), _hex(b"GIF8") + b"3[79]61",
    _hex(b"RIFF") + b"[0-9A-Fa-f]{8}" + _hex(b"WEBP"),
    _hex(b"ftyp") + b"(?:" + b"|".join(map(_hex, _IMAGE_BRANDS)) + b")"]))
_HEX_RUN = re.compile(rb"[0-9A-Fa-f]+")
_HEX_SHORTEST = 2 * 7  # an SOI, a marker, its length and the next byte
# What a body with more starts than are looked at is taken for (doubt refuses): a JPEG's
# start with a header.
_DOUBT = _SOI + b"\xe0\0\x02\xff"


def _hex_runs(body: bytes) -> Iterator[bytes]:
    """The bytes of each hex run from an image's signature on (``_JPEG_WINDOW`` of them) long
    enough to show a JPEG's header: a colour (``#ffd8ff``) is none, however many there are."""
    looked = 0
    for m in _HEX_START.finditer(body):
        run = _HEX_RUN.match(body, m.start(), m.start() + 2 * _JPEG_WINDOW).group()
        if len(run) < _HEX_SHORTEST:
            continue
        if looked == _MAX_JPEG_STARTS:
            yield _DOUBT
            return
        looked += 1
        yield bytes.fromhex(run[:len(run) // 2 * 2].decode())


def _shows_image(body: bytes) -> bool:
    """Whether ``body`` as it is holds an image (see :func:`carries_image`). A
    JPEG counts only with a header after its SOI, so that chance (one three-byte SOI in every
    16 MB of random bytes) does not refuse a video; every start is looked at, one overlapping
    another too (``/9j`` just before ``/9j/4AAQ``), and a body of more than
    ``_MAX_JPEG_STARTS`` SOIs of either kind is taken to carry one (doubt refuses). A base64
    run may be broken into lines (MIME, PEM, a JSON string's ``\\n``), a signature's or an
    SOI's symbols too. A JSON array of an image's byte values counts too."""
    start, looked = body.find(_SOI), 0
    while start >= 0:
        if looked == _MAX_JPEG_STARTS or _jpeg_header(body[start : start + _JPEG_WINDOW],
                                                       memoryview(body)[start + _JPEG_WINDOW :]):
            return True
        looked += 1
        start = body.find(_SOI, start + 1)  # every start: one may overlap the one before
    m, looked = _IMAGE_START.search(body), 0
    while m is not None:
        if m.lastindex is None:  # a signature
            return True
        align = (m.lastindex - 1) % 3  # which of _JPEG_STARTS
        start = _run_start(body, m.start(), align)
        if start >= 0:
            if looked == _MAX_JPEG_STARTS:
                return True
            looked += 1
            run = _BASE64_RUN.match(body, start, start + _BASE64_BUDGET)
            if run is not None and _jpeg_header(_decoded(run.group(), align)):
                return True
        m = _IMAGE_START.search(body, m.start() + 1)
    return any(image_type(_array_bytes(m.group()))
               for head in (_ARRAY_HEAD, _OBJECT_HEAD) for m in head.finditer(body))


def _array_bytes(head: bytes) -> bytes:
    """The bytes of a JSON array's or typed array object's first byte values (see
    :func:`byte_values`)."""
    return byte_values([int(v) for v in re.findall(
        rb"(?<![\d\"])-?\d+", re.sub(rb"%[0-9A-Fa-f]{2}", b" ", head))])


def byte_values(values: list[int]) -> bytes:
    """The bytes of byte values (0 to 255, or -128 to 127 when one is negative: Java's
    ``byte``), or b"" where they are not."""
    signed = min(values) < 0
    if min(values) < (-128 if signed else 0) or max(values) > (127 if signed else 255):
        return b""
    return bytes(n & 0xFF for n in values)


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
