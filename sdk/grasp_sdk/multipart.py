"""Byte-exact splicing of multipart bodies (RFC 2046 / RFC 7578).

The parser only locates things: delimiter lines, part headers and part bodies as offsets
into the original bytes. Replacing an image rewrites nothing but that part's body (and a
part-level ``Content-Length``, if a client sent one); the preamble, the epilogue, every
delimiter, every part header and every CRLF stay byte-identical. mitmproxy's own
``multipart_form`` must not be used for this: it loses CR/LF bytes inside binary parts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from grasp_sdk.base64_fields import Base64Text, decode_image_text, find_json_images
from grasp_sdk.patterns import name_matches
from grasp_sdk.sniff import image_type
from grasp_sdk.splice import Edit, ImageSlot, MalformedBody, PinnedBody

_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_PART_LENGTH = re.compile(rb"(?im)^content-length[ \t]*:[ \t]*(\d+)[ \t]*\r?$")
_JSON_START = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*[{\[]")  # an object or array, after a BOM
_MAX_BOUNDARY = 200  # RFC 2046 allows 70; be lenient with clients, not unbounded.


@dataclass(frozen=True)
class Part:
    """One part, as offsets into the body.

    Attributes:
        header_start: first byte of the part's header block.
        body_start: first byte of the part's content.
        body_end: one past its last byte (the CRLF before the next delimiter).
        headers: the part headers, names lower-cased.
    """

    header_start: int
    body_start: int
    body_end: int
    headers: dict[str, str]

    @property
    def name(self) -> str | None:
        """The ``name`` parameter of ``Content-Disposition``."""
        return header_params(self.headers.get("content-disposition", "")).get("name")

    @property
    def filename(self) -> str | None:
        """The ``filename`` parameter of ``Content-Disposition``."""
        return header_params(self.headers.get("content-disposition", "")).get("filename")


def header_params(value: str) -> dict[str, str]:
    """Parameters of a header value (``form-data; name="a"; filename="b.jpg"``), unquoted."""
    params = {}
    for key, raw in _PARAM.findall(value):
        raw = raw.strip()
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[key.lower()] = raw
    return params


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/*`` Content-Type; raises MalformedBody."""
    boundary = header_params(content_type).get("boundary")
    if not boundary:
        raise MalformedBody(f"no boundary in Content-Type {content_type!r}")
    if len(boundary) > _MAX_BOUNDARY:
        raise MalformedBody(f"boundary longer than {_MAX_BOUNDARY} characters")
    try:
        return boundary.encode("ascii")
    except UnicodeEncodeError:
        raise MalformedBody(f"non-ASCII boundary {boundary!r}") from None


def parse(body: bytes, boundary: bytes) -> list[Part]:
    """Locate the parts of a multipart ``body``; raises MalformedBody.

    A delimiter is ``--boundary`` at the start of the body or after CRLF; it must be
    followed by ``--`` (the close) or optional whitespace and CRLF. Like aiohttp's parser,
    any ``CRLF--boundary`` counts as a delimiter (RFC 2046 forbids it inside content), so
    an ambiguous body is malformed rather than parsed one way when a server may parse it
    another.
    """
    dash = b"--" + boundary
    if body.startswith(dash):
        pos = 0
    else:
        pos = body.find(b"\r\n" + dash)
        if pos < 0:
            raise MalformedBody("no opening boundary")
        pos += 2  # past the CRLF that ends the preamble
    parts: list[Part] = []
    while True:
        after = pos + len(dash)
        if body[after:after + 2] == b"--":
            return parts
        line_end = body.find(b"\r\n", after)
        if line_end < 0 or body[after:line_end].strip(b" \t"):
            raise MalformedBody(f"bad delimiter line at byte {pos}")
        start = line_end + 2
        end = body.find(b"\r\n" + dash, start)
        if end < 0:
            raise MalformedBody("no closing boundary")
        if body.startswith(b"\r\n", start) or end == start:
            separator = start
        else:
            separator = body.find(b"\r\n\r\n", start, end + 2)
            if separator < 0:
                raise MalformedBody(f"part at byte {start} has no blank line after its headers")
            separator += 2
        body_start = min(separator + 2, end)
        parts.append(Part(start, body_start, end, _parse_headers(body[start:separator])))
        pos = end + 2


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = None
    for line in block.decode("utf-8", "replace").split("\r\n"):
        if not line:
            continue
        if line[0] in " \t" and last is not None:
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise MalformedBody(f"bad part header line {line[:60]!r}")
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers


def find_images(body: bytes, content_type: str, fields: Iterable[str] = ()) -> list[ImageSlot]:
    """The image parts of a multipart body; raises MalformedBody.

    A part is an image when its content is one (by magic bytes), or is base64 text of one
    (X's ``media_data`` may travel so); the replacement is written the same way.

    Args:
        body: the whole request body.
        content_type: the request's ``Content-Type`` (carries the boundary).
        fields: part names to consider (``*`` wildcards); empty considers every part.
    """
    fields = tuple(fields)
    delimiter = b"\r\n--" + boundary_of(content_type)
    slots = []
    parts = parse(body, delimiter[4:])
    for part in parts:
        wanted = not fields or name_matches(part.name or "", fields)
        content = body[part.body_start:part.body_end]
        encode: Callable[[bytes], bytes]
        media_type, exact_size = image_type(content) if wanted else None, False
        if media_type is not None:
            data, encode = content, _identity
        else:
            decoded = _base64_image(content) if wanted else None
            if decoded is None:
                slots += _json_part(body, part, () if wanted else fields)
                continue
            style, data = decoded
            media_type = image_type(data) or "application/octet-stream"
            encode, exact_size = _encoder(style), not style.padding_shown
        slots.append(ImageSlot(
            location=f"multipart part {part.name!r}",
            data=data,
            media_type=media_type,
            edits=_part_edits(body, part, delimiter, encode),
            exact_size=exact_size,
        ))
    pinned = [f"{part.name!r}" for part in parts if _is_checksum(part.name or "")]
    pinned += [f"Content-MD5 of {part.name!r}" for part in parts if "content-md5" in part.headers]
    if slots and pinned:
        raise PinnedBody(f"the form carries a checksum of its file ({', '.join(pinned)})")
    return slots


def _json_part(body: bytes, part: Part, fields: tuple[str, ...]) -> list[ImageSlot]:
    """The images in a part that is a JSON document (``fields``: its keys to consider; empty:
    all); none in a part that states its own length (one edit per image could not keep it)."""
    if (_PART_LENGTH.search(body, part.header_start, part.body_start)
            or not _JSON_START.match(body, part.body_start, part.body_end)):
        return []
    try:
        slots = find_json_images(body[part.body_start:part.body_end], fields)
    except MalformedBody:
        return []
    return [replace(slot, location=f"multipart part {part.name!r} → {slot.location}",
                    edits=_shifted(slot.edits, part.body_start)) for slot in slots]


def _shifted(edits: Callable[[bytes], list[Edit]], by: int) -> Callable[[bytes], list[Edit]]:
    return lambda new: [Edit(e.start + by, e.end + by, e.data) for e in edits(new)]


def _is_checksum(name: str) -> bool:
    """Whether a form field holds a checksum of the file (S3 and GCS browser uploads)."""
    name = name.lower()
    return name in ("content-md5", "x-goog-hash") or (
        name.startswith("x-amz-checksum-") and name not in _AMZ_CHECKSUM_NOT_DIGESTS)


_AMZ_CHECKSUM_NOT_DIGESTS = ("x-amz-checksum-algorithm", "x-amz-checksum-type",
                             "x-amz-checksum-mode")


def _identity(data: bytes) -> bytes:
    return data


def _encoder(style: Base64Text) -> Callable[[bytes], bytes]:
    return lambda data: style.encode(data).encode("ascii")


def _base64_image(content: bytes) -> tuple[Base64Text, bytes] | None:
    try:
        return decode_image_text(content.decode("ascii"))
    except UnicodeDecodeError:
        return None


def _part_edits(body: bytes, part: Part, delimiter: bytes,
                encode: Callable[[bytes], bytes]) -> Callable[[bytes], list[Edit]]:
    def edits(image: bytes) -> list[Edit]:
        new = encode(image)
        if delimiter in new:
            raise ValueError("the new part content contains the multipart delimiter")
        out = [Edit(part.body_start, part.body_end, new)]
        declared = _PART_LENGTH.search(body, part.header_start, part.body_start)
        if declared:
            out.append(Edit(declared.start(1), declared.end(1), str(len(new)).encode()))
        return out
    return edits
