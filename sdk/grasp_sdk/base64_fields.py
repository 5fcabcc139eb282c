"""Images carried as base64 text: JSON string values (at any depth) and urlencoded forms;
and in JSON, as arrays of byte values (:mod:`grasp_sdk.byte_arrays`). JSON written inside a
JSON string or a form value is read too (:mod:`grasp_sdk.encoded_text`).

Plain base64 and ``data:image/...;base64,`` URIs are both recognised, in standard or
URL-safe alphabets, padded or not, on one line or wrapped. A replacement is written in
the same style, and put back minimally: in JSON only the string token changes (key order,
whitespace, escaping of ``/`` as the client wrote them); in a form only the value changes,
percent-encoded the way the client encoded it.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote_plus, unquote_to_bytes

from grasp_sdk.byte_arrays import ByteArray, image_array_at
from grasp_sdk.encoded_text import EncodedText, form_value, json_string
from grasp_sdk.patterns import name_matches
from grasp_sdk.sniff import image_type
from grasp_sdk.splice import Edit, ImageSlot, MalformedBody

_DATA_URI = re.compile(r"data:[\w.+-]+/[\w.+-]+(?:;[^;,]*)*?;base64,", re.IGNORECASE)
_B64_TEXT = re.compile(r"[A-Za-z0-9+/_=\r\n-]+")
_MIN_TEXT = 24  # 18 bytes: enough for every magic number image_type knows
_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]")


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_BOM = "\ufeff"
_NUMBERS = re.compile(r"\[[\d\s,.eE+-]*+\]")  # a flat array of numbers, or of nothing JSON reads
_ImageArray = tuple[ByteArray, bytes]
_Place = Callable[[list[int]], dict[int, int]]
_Write = Callable[[str], bytes]
_WIDE = re.compile("[^\x00-\x7f]")
_MAX_NESTING = 3  # JSON within JSON (or a form) read this many levels down
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Base64Text:
    """How one image was written as text, to write its replacement the same way.

    Attributes:
        prefix: the ``data:...;base64,`` prefix, or ``""``.
        urlsafe: ``-_`` instead of ``+/``.
        padded: ``=`` padding kept.
        padding_shown: whether the text shows if its writer pads (it ends with ``=``, its
            length is no multiple of 4, or it is in the standard alphabet, whose writers
            pad); where not, ``padded`` is a guess, and only a replacement as long as the
            image is written the same either way.
        line_length: characters per line when wrapped, 0 when on one line.
        line_sep: the line separator when wrapped.
        trailing_sep: whether the text ends with a line separator.
    """

    prefix: str
    urlsafe: bool
    padded: bool
    padding_shown: bool = True
    line_length: int = 0
    line_sep: str = "\n"
    trailing_sep: bool = False

    def encode(self, data: bytes) -> str:
        """``data`` as base64 text in this style."""
        text = (base64.urlsafe_b64encode if self.urlsafe else base64.b64encode)(data).decode()
        if not self.padded:
            text = text.rstrip("=")
        if self.line_length:
            lines = [text[i:i + self.line_length] for i in range(0, len(text), self.line_length)]
            text = self.line_sep.join(lines)
        return self.prefix + text + (self.line_sep if self.trailing_sep else "")


def decode_image_text(text: str) -> tuple[Base64Text, bytes] | None:
    """Decode ``text`` if it is base64 (or a base64 data URI) of an image, else None."""
    return _decode(text, image_only=True)


def decode_base64_text(text: str) -> tuple[Base64Text, bytes] | None:
    """Decode ``text`` if it is base64 (or a base64 data URI) of any bytes, else None.

    For a piece of an image (an APPEND segment of a chunked upload): no magic bytes of its
    own, and possibly only a few bytes long.
    """
    return _decode(text, image_only=False)


def _decode(text: str, image_only: bool) -> tuple[Base64Text, bytes] | None:
    match = _DATA_URI.match(text)
    prefix = match.group(0) if match else ""
    payload = text[len(prefix):]
    if (image_only and len(payload) < _MIN_TEXT) or not _B64_TEXT.fullmatch(payload):
        return None
    line_length, line_sep, trailing_sep = 0, "\n", False
    if "\n" in payload:
        line_sep = "\r\n" if "\r\n" in payload else "\n"
        lines = payload.split(line_sep)
        trailing_sep = lines[-1] == ""
        # one line and its end (`base64 -w0; echo`) is no wrapping: the new text is one line too
        line_length = len(lines[0]) if len(lines) - trailing_sep > 1 else 0
        payload = "".join(lines)
    urlsafe = "-" in payload or "_" in payload
    if urlsafe and ("+" in payload or "/" in payload):
        return None
    altchars = b"-_" if urlsafe else None
    try:
        if image_only and image_type(base64.b64decode(payload[:_MIN_TEXT], altchars,
                                                       validate=True)) is None:
            return None
        data = base64.b64decode(payload + "=" * (-len(payload) % 4), altchars, validate=True)
    except (binascii.Error, ValueError):
        return None
    # Unpadded text of a length a multiple of 4 says nothing of its writer: URL-safe writers
    # mostly leave padding out (JWT, RFC 7515), standard ones put it in.
    padded = payload.endswith("=") or (len(payload) % 4 == 0 and not urlsafe)
    # standard writers pad (btoa, FileReader, b64encode); URL-safe ones go either way
    shown = payload.endswith("=") or len(payload) % 4 != 0 or not urlsafe
    return Base64Text(prefix, urlsafe, padded, shown, line_length, line_sep, trailing_sep), data


def find_json_images(body: bytes, fields: Iterable[str] = ()) -> list[ImageSlot]:
    """Images in the string values of a JSON body, and in its arrays of byte values
    (:mod:`grasp_sdk.byte_arrays`), and in JSON written inside its strings; raises
    MalformedBody.

    Args:
        body: the UTF-8 JSON body (after a byte-order mark, as .NET's writers put one).
        fields: keys to consider, at any depth (``*`` wildcards; array items count under
            the nearest key; in JSON inside a string, the string's key considers all its
            keys); empty considers every string value.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"not JSON: {exc}") from None
    return _json_slots(text, tuple(fields), 0, _Utf8Offsets(text), _ascii)


def looks_like_json(text: str) -> bool:
    """Whether ``text`` may be a JSON document that holds an image (an object or array)."""
    return text.lstrip(" \t\r\n")[:1] in ("{", "[")


def json_within(inner: EncodedText, location: str, fields: tuple[str, ...], depth: int,
                place: _Place, write: _Write) -> list[ImageSlot]:
    """Images in JSON written inside a text (``inner``: a string value, a form value,
    ``depth`` texts down), put back through that text's escapes; none if the text is no
    JSON document. ``fields``: the inner keys to consider (empty: all); ``place`` and
    ``write``: the container's (see :func:`_json_slots`)."""
    if _LONE_SURROGATE.search(inner.text):  # no UTF-8 text: not JSON a server reads
        return []

    def place_inner(positions: list[int]) -> dict[int, int]:
        outer = [inner.outer_offset(p) for p in positions]
        placed = place(outer)
        return {p: placed[o] for p, o in zip(positions, outer, strict=True)}

    try:
        return _json_slots(inner.text, fields, depth + 1, place_inner,
                           lambda token: write(inner.encode(token)), f"{location} → ")
    except MalformedBody:
        return []


def _json_slots(text: str, fields: tuple[str, ...], depth: int, place: _Place,
                write: _Write, prefix: str = "") -> list[ImageSlot]:
    """The images of the JSON document ``text``; raises MalformedBody.

    Args:
        text: the document, as decoded.
        fields: as for :func:`find_json_images`.
        depth: how many texts of the body the document is written inside.
        place: the body's byte offsets of character offsets (ascending) of ``text``.
        write: new JSON text (a token) as the body's bytes, escaped as ``text`` is there.
        prefix: put before each slot's location (where ``text`` lies in the body).
    """
    try:
        strings: list[tuple[tuple[str | int, ...], int, int, str | _ImageArray]] = []
        end = _skip_ws(text, _scan(text, int(text.startswith(_BOM)), (), strings))
    except (ValueError, RecursionError) as exc:
        raise MalformedBody(f"not JSON: {exc}") from None
    if end != len(text):
        raise MalformedBody(f"not JSON: extra data at character {end}")
    slots = []
    offsets = place([i for _, start, stop, _ in strings for i in (start, stop)])
    for path, start, stop, value in strings:
        key = next((p for p in reversed(path) if isinstance(p, str)), "")
        wanted = not fields or name_matches(key, fields)
        location = prefix + "json $" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
        byte_start, byte_stop = offsets[start], offsets[stop]
        if isinstance(value, tuple):  # an image's array of byte values
            array, data = value
            if wanted:
                slots.append(ImageSlot(location, data, image_type(data) or "",
                                       _array_edits(byte_start, byte_stop, array, write)))
            continue
        decoded = decode_image_text(value) if wanted else None
        if decoded is None:
            inner = json_string(text[start + 1:stop - 1], start + 1) if (
                depth < _MAX_NESTING and looks_like_json(value)) else None
            if inner is not None:
                slots += json_within(inner, location, () if wanted else fields, depth, place,
                                     write)
            continue
        style, data = decoded
        slash_escaped = "\\/" in text[start:stop]
        slots.append(ImageSlot(
            location=location,
            data=data,
            media_type=image_type(data) or "application/octet-stream",
            edits=_json_edits(byte_start, byte_stop, style, slash_escaped, write),
            exact_size=not style.padding_shown,
        ))
    return slots


def _ascii(token: str) -> bytes:
    return token.encode("ascii")


class _Utf8Offsets:
    """The UTF-8 byte offsets of character offsets of ``text``, any number of times at the
    cost of a search (one encode of the text before each would be quadratic)."""

    def __init__(self, text: str) -> None:
        self._wide: list[int] = []  # the characters past ASCII
        self._extra: list[int] = [0]  # the bytes past one a character before each of them
        for match in _WIDE.finditer(text):
            self._wide.append(match.start())
            self._extra.append(self._extra[-1] + len(match.group().encode("utf-8")) - 1)

    def __call__(self, positions: list[int]) -> dict[int, int]:
        return {p: p + self._extra[bisect.bisect_left(self._wide, p)] for p in positions}


def _identity(positions: list[int]) -> dict[int, int]:
    return {p: p for p in positions}


def _array_edits(start: int, stop: int, style: ByteArray,
                 write: _Write) -> Callable[[bytes], list[Edit]]:
    return lambda new: [Edit(start, stop, write(style.encode(new)))]


def _json_edits(start: int, stop: int, style: Base64Text, slash_escaped: bool,
                write: _Write) -> Callable[[bytes], list[Edit]]:
    def edits(new: bytes) -> list[Edit]:
        token = json.dumps(style.encode(new))
        if slash_escaped:
            token = token.replace("/", "\\/")
        return [Edit(start, stop, write(token))]
    return edits


def _scan(text: str, i: int, path: tuple[str | int, ...],
          out: list[tuple[tuple[str | int, ...], int, int, str | _ImageArray]]) -> int:
    """Scan one JSON value at ``i``, recording string values long enough to hold an image
    (as base64 or as JSON written inside) and images' arrays of byte values with their
    spans; its end."""
    i = _skip_ws(text, i)
    c = text[i:i + 1]
    if c == '"':
        value, end = _DECODER.raw_decode(text, i)
        if len(value) >= _MIN_TEXT:  # a short one kept would only be work for the collector
            out.append((path, i, end, value))
        return int(end)
    array = image_array_at(text, i) if c == "[" else None
    if array is not None:
        end, style, data = array
        out.append((path, i, end, (style, data)))
        return end
    if c == "[" and _NUMBERS.match(text, i):  # an array of numbers only: checked at C speed
        return int(_DECODER.raw_decode(text, i)[1])
    if c in ("{", "["):
        close = "}" if c == "{" else "]"
        i = _skip_ws(text, i + 1)
        if text[i:i + 1] == close:
            return i + 1
        index = 0
        while True:
            if c == "{":
                i = _skip_ws(text, i)
                if text[i:i + 1] != '"':
                    raise ValueError(f"expected a key at character {i}")
                key, i = _DECODER.raw_decode(text, i)
                i = _skip_ws(text, i)
                if text[i:i + 1] != ":":
                    raise ValueError(f"expected ':' at character {i}")
                i = _scan(text, i + 1, (*path, key), out)
            else:
                i = _scan(text, i, (*path, index), out)
                index += 1
            i = _skip_ws(text, i)
            sep = text[i:i + 1]
            if sep == close:
                return i + 1
            if sep != ",":
                raise ValueError(f"expected ',' or {close!r} at character {i}")
            i += 1
    match = _SCALAR.match(text, i)
    if not match:
        raise ValueError(f"unexpected {c!r} at character {i}")
    return match.end()


def _skip_ws(text: str, i: int) -> int:
    match = _WS.match(text, i)
    return match.end() if match else i


def find_form_images(body: bytes, fields: Iterable[str] = ()) -> list[ImageSlot]:
    """Images in the values of an ``application/x-www-form-urlencoded`` body, and in JSON
    written in one.

    Args:
        body: the form body.
        fields: field names to consider (``*`` wildcards); empty considers every field.
    """
    fields = tuple(fields)
    slots = []
    pos = 0
    for pair in body.split(b"&"):
        start, pos = pos, pos + len(pair) + 1
        raw_name, eq, raw_value = pair.partition(b"=")
        if not eq:
            continue
        try:
            name = unquote_plus(raw_name.decode("ascii"), errors="strict")
            value_text = raw_value.decode("ascii")
        except UnicodeDecodeError:
            continue
        wanted = not fields or name_matches(name, fields)
        value_start = start + len(raw_name) + 1
        raw = unquote_to_bytes(value_text.replace("+", " ")) if wanted else b""
        media_type = image_type(raw)
        if media_type is not None:  # the image's own bytes (requests' data={"photo": bytes})
            slots.append(ImageSlot(f"form field {name!r}", raw, media_type,
                                   _form_byte_edits(value_start, value_start + len(raw_value),
                                                    value_text)))
            continue
        try:
            value = unquote_plus(value_text, errors="strict")
        except UnicodeDecodeError:
            continue
        decoded = decode_image_text(value) if wanted else None
        if decoded is None:
            inner = form_value(value_text, value_start, _requoted(value_text)) if (
                looks_like_json(value)) else None
            if inner is not None:  # the body is ASCII: its characters are its bytes
                slots += json_within(inner, f"form field {name!r}", () if wanted else fields, 0,
                                     _identity, _ascii)
            continue
        style, data = decoded
        slots.append(ImageSlot(
            location=f"form field {name!r}",
            data=data,
            media_type=image_type(data) or "application/octet-stream",
            edits=_form_edits(value_start, value_start + len(raw_value), style, value_text),
            exact_size=not style.padding_shown,
        ))
    return slots


def _form_edits(start: int, stop: int, style: Base64Text,
                original: str) -> Callable[[bytes], list[Edit]]:
    def edits(new: bytes) -> list[Edit]:
        return [Edit(start, stop, requote(original, style.encode(new)).encode("ascii"))]
    return edits


def _form_byte_edits(start: int, stop: int, original: str) -> Callable[[bytes], list[Edit]]:
    return lambda new: [Edit(start, stop, requote_bytes(original, new).encode("ascii"))]


def _requoted(original: str) -> Callable[[str], str]:
    return lambda text: requote(original, text)


def requote(original: str, text: str) -> str:
    """Percent-encode ``text`` the way ``original`` (a raw form value) was encoded: see
    :func:`requote_bytes`; characters past ASCII are written as their UTF-8 bytes (as forms
    encode them)."""
    return requote_bytes(original, text.encode("utf-8"))


def requote_bytes(original: str, data: bytes) -> str:
    """Percent-encode ``data`` the way ``original`` (a raw form value) was encoded.

    A byte the original escaped is escaped the same way (hex case included), one it left
    literal stays literal; bytes it did not contain are escaped unless unreserved.
    """
    seen: dict[int, str] = {}
    lower_hex = False
    for match in re.finditer(r"%([0-9A-Fa-f]{2})|(.)", original, re.DOTALL):
        if match.group(1):
            lower_hex = lower_hex or match.group(1) != match.group(1).upper()
            seen.setdefault(int(match.group(1), 16), match.group(0))
        elif match.group(2) != "+" and ord(match.group(2)) < 0x80:
            seen.setdefault(ord(match.group(2)), match.group(2))
    out = []
    for byte in data:
        if byte in seen:
            out.append(seen[byte])
        elif byte < 0x80 and _UNRESERVED.fullmatch(chr(byte)):
            out.append(chr(byte))
        else:
            code = f"%{byte:02X}"
            out.append(code.lower() if lower_hex else code)
    return "".join(out)
