"""X's chunked media upload on the wire: its commands, and the media bytes of an APPEND.

``upload.x.com/i/media/upload.json`` (and the public API's ``/1.1/media/upload.json``):
INIT declares ``total_bytes`` and ``media_type`` and is answered with a ``media_id``; each
APPEND carries ``media_id``, ``segment_index`` and a piece of the file, as the binary
multipart part ``media`` or as base64 ``media_data`` (a multipart part or a urlencoded
field), and is answered 204 without a body; FINALIZE closes. Parameters travel in the
query string (the web client) or in the body.

The X API v2 has the same commands on ``api.x.com/2/media/upload`` (``command`` in the
query or the form; INIT answered ``{"data": {"id": ...}}``), and dedicated endpoints
(docs.x.com/x-api/media, OpenAPI ``AppendMediaUploadRequest``):
``POST /2/media/upload/initialize`` with a JSON body (``total_bytes``, ``media_type``),
``POST /2/media/upload/{id}/append`` with ``media`` (a multipart file part, or base64 in a
JSON string) and ``segment_index``, ``POST /2/media/upload/{id}/finalize``. A v2 APPEND is
answered 200 with ``{"data": {"expires_at": ...}}``.

Parsing only locates things: putting new bytes into a segment changes nothing else in its
body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from grasp_sdk.base64_fields import Base64Text, decode_base64_text, requote
from grasp_sdk.multipart import boundary_of, parse
from grasp_sdk.splice import MalformedBody

# Parameters read from a body: every field but the media itself.
_PARAMS = ("command", "media_id", "segment_index", "total_bytes", "media_type")
_V2 = "/2/media/upload"
_V2_DEDICATED = re.compile(r"/2/media/upload/(?:(initialize)|(\d{1,19})/(append|finalize))")
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


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
class Declared:
    """INIT's answer: the upload's ``media_id``, and the seconds it may take, if said."""

    media_id: str
    expires_after_s: int | None = None


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
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    try:
        params = {**_body_params(content_type, body), **params}
    except (MalformedBody, ValueError):  # UnicodeDecodeError and JSONDecodeError included
        pass
    dedicated = _V2_DEDICATED.fullmatch(parts.path)
    if dedicated is not None:
        initialize, media_id, verb = dedicated.groups()
        params["command"] = "INIT" if initialize else verb
        if media_id is not None:
            params["media_id"] = media_id
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
    if _is_json(media):
        doc = json.loads(body)
        return {k: str(v) for k, v in doc.items() if k in _PARAMS
                and isinstance(v, (str, int)) and not isinstance(v, bool)} \
            if isinstance(doc, dict) else {}
    return {}


def init_answer(answer: bytes) -> Declared | None:
    """What INIT's JSON answer declares: ``media_id_string`` first (ids pass 2**53), or
    the v2 API's ``data.id``; None when it names no media id."""
    try:
        doc = json.loads(answer)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("data"), dict):
        doc = doc["data"]
    media_id = doc.get("media_id_string", doc.get("media_id", doc.get("id")))
    if not isinstance(media_id, (str, int)) or isinstance(media_id, bool) or media_id == "":
        return None
    expires = doc.get("expires_after_secs")
    valid = isinstance(expires, int) and not isinstance(expires, bool) and expires >= 0
    return Declared(str(media_id), expires if valid else None)


def accepted(url: str, expires_at: int | None) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """X's own answer to an APPEND it took: status, body and headers (204 and no body; the
    v2 API's 200 and ``{"data": {"expires_at": ...}}``, which its clients parse)."""
    if not urlsplit(url).path.startswith(_V2):
        return 204, b"", []
    data = {} if expires_at is None else {"expires_at": expires_at}
    return 200, json.dumps({"data": data}).encode(), [
        (b"Content-Type", b"application/json; charset=utf-8")]


def segment_of(content_type: str, body: bytes) -> Segment:
    """The piece of the file in an APPEND body; raises MalformedBody when there is none."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("multipart/"):
        return _multipart_segment(content_type, body)
    if media == "application/x-www-form-urlencoded":
        return _form_segment(body)
    if _is_json(media):
        return _json_segment(body)
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


def _json_segment(body: bytes) -> Segment:
    """The base64 string ``media`` of a JSON object (the v2 API's JSON APPEND)."""
    try:
        text = body.decode("utf-8")
        span = _top_level_string(text, "media")
    except ValueError as exc:
        raise MalformedBody(f"not a JSON object: {exc}") from None
    if span is None:
        raise MalformedBody("no JSON string 'media'")
    start, stop, value = span
    decoded = decode_base64_text(value)
    if decoded is None:
        raise MalformedBody("JSON string 'media' is not base64")
    style, data = decoded
    byte_start = len(text[:start].encode("utf-8"))
    byte_stop = byte_start + len(text[start:stop].encode("utf-8"))
    return Segment(data, "json $.media", _replacer(
        body, byte_start, byte_stop, _json_encoder(style, "\\/" in text[start:stop])))


def _top_level_string(text: str, key: str) -> tuple[int, int, str] | None:
    """Where the string value of ``key`` lies in the JSON object ``text`` (its token's
    span) and what it says; None when ``key`` holds no string. Raises ValueError."""
    i = _skip_ws(text, 0)
    if text[i:i + 1] != "{":
        raise ValueError("the body is not a JSON object")
    found = None
    i = _skip_ws(text, i + 1)
    closed = text[i:i + 1] == "}"
    if closed:
        i += 1
    while not closed:
        name, i = _DECODER.raw_decode(text, _skip_ws(text, i))
        i = _skip_ws(text, i)
        if not isinstance(name, str) or text[i:i + 1] != ":":
            raise ValueError(f"expected a key and ':' at character {i}")
        start = _skip_ws(text, i + 1)
        value, i = _DECODER.raw_decode(text, start)
        if name == key:
            found = (start, i, value) if isinstance(value, str) else None
        i = _skip_ws(text, i)
        separator, i = text[i:i + 1], i + 1
        if separator not in (",", "}"):
            raise ValueError(f"expected ',' or '}}' at character {i - 1}")
        closed = separator == "}"
    if text[i:].strip(" \t\n\r"):
        raise ValueError(f"extra data at character {i}")
    return found


def _skip_ws(text: str, i: int) -> int:
    match = _WS.match(text, i)
    return match.end() if match else i


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


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


def _json_encoder(style: Base64Text, slash_escaped: bool) -> Callable[[bytes], bytes]:
    """A JSON string of base64 in ``style``, ``/`` escaped when the client escaped it."""
    def encode(data: bytes) -> bytes:
        token = json.dumps(style.encode(data))
        return (token.replace("/", "\\/") if slash_escaped else token).encode("ascii")
    return encode


def _encoder(style: Base64Text) -> Callable[[bytes], bytes]:
    return lambda data: style.encode(data).encode("ascii")


def _base64(content: bytes) -> tuple[Base64Text, bytes] | None:
    try:
        return decode_base64_text(content.decode("ascii"))
    except UnicodeDecodeError:
        return None
