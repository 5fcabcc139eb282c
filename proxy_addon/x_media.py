"""X's chunked media upload on the wire: its commands, and the media bytes of an APPEND.

``upload.x.com/i/media/upload.json`` (and the public API's ``/1.1/media/upload.json``):
INIT declares ``total_bytes`` and ``media_type`` and is answered with a ``media_id``; each
APPEND carries ``media_id``, ``segment_index`` and a piece of the file, as the binary
multipart part ``media`` or as base64 ``media_data`` (a multipart part or a urlencoded
field); FINALIZE closes. Parameters travel in the query string (the web client) or in the
body. Parsing only locates things: putting new bytes into a segment changes nothing else
in its body.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from grasp_sdk.base64_fields import Base64Text, decode_base64_text, requote
from grasp_sdk.multipart import boundary_of, parse
from grasp_sdk.splice import MalformedBody

# Parameters read from a multipart body: every text part but the media itself.
_PARAMS = ("command", "media_id", "segment_index", "total_bytes", "media_type")


@dataclass(frozen=True)
class Init:
    """INIT: an upload of ``total_bytes`` bytes of ``media_type`` begins."""

    total_bytes: int
    media_type: str


@dataclass(frozen=True)
class Append:
    """APPEND: segment ``segment_index`` of media ``media_id``."""

    media_id: str
    segment_index: int


@dataclass(frozen=True)
class Finalize:
    """FINALIZE: every segment of media ``media_id`` was sent."""

    media_id: str


Command = Init | Append | Finalize


@dataclass(frozen=True)
class Segment:
    """The piece of the file one APPEND carries.

    Attributes:
        data: the bytes (decoded when they travel as base64).
        location: where they are in the body, for records.
        replace: the body with other bytes of the same length in their place, written
            the way the client wrote them; raises ValueError when they cannot be.
    """

    data: bytes
    location: str
    replace: Callable[[bytes], bytes]


def parse_command(url: str, content_type: str, body: bytes) -> Command | None:
    """The command of one request to the upload endpoint, or None when it names none
    (or STATUS, or one whose parameters are missing or malformed)."""
    params = dict(parse_qsl(urlsplit(url).query))
    try:
        params = {**_body_params(content_type, body), **params}
    except (MalformedBody, UnicodeDecodeError):
        pass
    command = params.get("command", "").upper()
    try:
        if command == "INIT":
            total = int(params["total_bytes"])
            return Init(total, params.get("media_type", "")) if total >= 0 else None
        if command == "APPEND":
            index = int(params["segment_index"])
            return Append(params["media_id"], index) if index >= 0 else None
        if command == "FINALIZE":
            return Finalize(params["media_id"])
    except (KeyError, ValueError):
        return None
    return None


def _body_params(content_type: str, body: bytes) -> dict[str, str]:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        return {k: v for k, v in parse_qsl(body.decode("ascii")) if k in _PARAMS}
    if media.startswith("multipart/"):
        return {part.name: body[part.body_start:part.body_end].decode("utf-8").strip()
                for part in parse(body, boundary_of(content_type))
                if part.name in _PARAMS}
    return {}


def media_id_of(answer: bytes) -> str | None:
    """The ``media_id`` of INIT's JSON answer (``media_id_string`` first: ids pass 2**53)."""
    try:
        doc = json.loads(answer)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    media_id = doc.get("media_id_string", doc.get("media_id"))
    return str(media_id) if isinstance(media_id, (str, int)) and media_id != "" else None


def segment_of(content_type: str, body: bytes) -> Segment:
    """The piece of the file in an APPEND body; raises MalformedBody when there is none."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("multipart/"):
        return _multipart_segment(content_type, body)
    if media == "application/x-www-form-urlencoded":
        return _form_segment(body)
    raise MalformedBody(f"an APPEND body of type {media or 'unknown'!r}")


def _multipart_segment(content_type: str, body: bytes) -> Segment:
    boundary = boundary_of(content_type)
    for part in parse(body, boundary):
        if part.name not in ("media", "media_data"):
            continue
        content = body[part.body_start:part.body_end]
        encode: Callable[[bytes], bytes] = bytes
        if part.name == "media_data":
            decoded = _base64(content)
            if decoded is None:
                raise MalformedBody("multipart part 'media_data' is not base64")
            style, content = decoded
            encode = _encoder(style)
        return Segment(content, f"multipart part {part.name!r}", _replacer(
            body, part.body_start, part.body_end, _no_delimiter(encode, b"\r\n--" + boundary)))
    raise MalformedBody("no multipart part 'media' or 'media_data'")


def _form_segment(body: bytes) -> Segment:
    pos = 0
    for pair in body.split(b"&"):
        start, pos = pos, pos + len(pair) + 1
        name, eq, raw = pair.partition(b"=")
        if name != b"media_data" or not eq:
            continue
        try:
            original = raw.decode("ascii")
            decoded = decode_base64_text(unquote_plus(original, errors="strict"))
        except UnicodeDecodeError:
            decoded = None
        if decoded is None:
            raise MalformedBody("form field 'media_data' is not base64")
        style, data = decoded
        value_start = start + len(name) + 1
        return Segment(data, "form field 'media_data'", _replacer(
            body, value_start, value_start + len(raw), _form_encoder(style, original)))
    raise MalformedBody("no form field 'media_data'")


def _replacer(body: bytes, start: int, end: int,
              encode: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """Puts ``encode(new)`` in place of ``body[start:end]``."""
    return lambda new: body[:start] + encode(new) + body[end:]


def _no_delimiter(encode: Callable[[bytes], bytes],
                  delimiter: bytes) -> Callable[[bytes], bytes]:
    def checked(new: bytes) -> bytes:
        text = encode(new)
        if delimiter in text:
            raise ValueError("the new segment contains the multipart delimiter")
        return text
    return checked


def _form_encoder(style: Base64Text, original: str) -> Callable[[bytes], bytes]:
    """Base64 in ``style``, percent-encoded the way ``original`` (the raw value) was."""
    return lambda data: requote(original, style.encode(data)).encode("ascii")


def _encoder(style: Base64Text) -> Callable[[bytes], bytes]:
    return lambda data: style.encode(data).encode("ascii")


def _base64(content: bytes) -> tuple[Base64Text, bytes] | None:
    try:
        return decode_base64_text(content.decode("ascii"))
    except UnicodeDecodeError:
        return None
