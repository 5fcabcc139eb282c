"""Read the image and the options of a protect request, in memory only.

The image is the raw body, or the multipart field ``image``; options come from the query
string and, in a multipart body, from its other fields. aiohttp's ``request.post()`` spools
file fields to a temporary file, so multipart bodies are read part by part here instead:
uploads never touch the disk. Every field counts toward ``max_bytes``, and a form is refused
at its first field past a bound (their number, a name's length, a repeated option), not once
it is all in memory. A body the multipart reader cannot parse (boundaries, part headers, a
part without a name, an encoding that does not decode) is an :class:`InvalidImageError`,
whatever aiohttp raised, said in words of its own: aiohttp's messages quote the body's
bytes (a part's first hundred, the image's). A raw body is read in chunks against
``max_bytes`` too: a compressed one (``Content-Encoding: gzip``) is inflated no further.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.multipart import BadContentDispositionHeader, BadContentDispositionParam

from grasp_guard.errors import ConfigError, ImageTooLargeError, InvalidImageError

IMAGE_FIELD = "image"
MAX_OPTION_BYTES = 1024
MAX_FIELDS = 64  # far more than there are options
MAX_NAME = 64  # characters of a field name
_CHUNK = 64 * 1024
# What aiohttp's multipart reader raises on a malformed body: HTTP parse errors for part
# headers (too long, too many, no colon), ValueError for boundaries, RuntimeError for a
# ``_charset_`` part longer than 31 bytes, AssertionError for one behind a boundary longer
# than 30 (aiohttp 3.14 reads it in a 32-byte chunk and asserts the chunk outsizes the
# boundary), its Content-Disposition warnings where warnings are errors, and a body whose
# Content-Encoding does not decode (RequestPayloadError).
_MALFORMED = (HttpProcessingError, ValueError, RuntimeError, AssertionError,
              BadContentDispositionHeader, BadContentDispositionParam, web.RequestPayloadError)

#: Told the length of each piece of the body as it arrives.
Arrived = Callable[[int], None]


@contextlib.contextmanager
def _parsing() -> Iterator[None]:
    """Turn the multipart reader's parse failures into InvalidImageError."""
    try:
        yield
    except _MALFORMED as exc:
        raise InvalidImageError(f"malformed multipart body: {_what(exc)}") from exc


def _what(exc: Exception) -> str:
    """What ``exc`` says of a malformed body, without its quotes of the body."""
    if isinstance(exc, LineTooLong):
        return "a part's header line is too long (no blank line after its headers?)"
    if isinstance(exc, HttpProcessingError):
        return "a part's headers do not parse"
    if isinstance(exc, (BadContentDispositionHeader, BadContentDispositionParam)):
        return "a part's Content-Disposition does not parse"
    if isinstance(exc, web.RequestPayloadError):
        return "it does not read (a Content-Encoding that does not decode, a broken chunk)"
    if isinstance(exc, ValueError):
        return "its boundaries do not parse (none at its start, or one that is malformed)"
    return f"it does not parse ({type(exc).__name__})"


def _unique(pairs: Iterable[tuple[str, str]], where: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise ConfigError(f"option {name!r} is given twice in the {where}")
        params[name] = value
    return params


async def _read_part(part: BodyPartReader, limit: int, arrived: Arrived) -> bytes | None:
    """The part's bytes, or None when it is longer than ``limit``."""
    data = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        arrived(len(chunk))
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)


async def _read_multipart(request: web.Request, max_bytes: int,
                          arrived: Arrived) -> tuple[bytes, dict[str, str]]:
    with _parsing():
        reader = await request.multipart()
    image: bytes | None = None
    fields: dict[str, str] = {}
    total = 0
    while True:
        with _parsing():
            part = await reader.next()
            name = part.name if isinstance(part, BodyPartReader) else None
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise InvalidImageError("nested multipart bodies are not supported")
        if name is None:
            raise InvalidImageError("malformed multipart body: a part has no name (its "
                                    "Content-Disposition is missing or malformed)")
        if len(name) > MAX_NAME:
            raise ConfigError(f"a form field name is longer than {MAX_NAME} characters")
        if name == IMAGE_FIELD:
            if image is not None:
                raise ConfigError(f"the form has more than one {IMAGE_FIELD!r} field")
            with _parsing():
                image = await _read_part(part, max_bytes - total, arrived)
            if image is None:
                raise ImageTooLargeError(f"the request body exceeds {max_bytes} bytes")
            total += len(image)
            continue
        if name in fields:  # refused before the rest of the body is read
            raise ConfigError(f"option {name!r} is given twice in the form")
        if len(fields) == MAX_FIELDS:
            raise ConfigError(f"the form has more than {MAX_FIELDS} option fields")
        with _parsing():
            value = await _read_part(part, MAX_OPTION_BYTES, arrived)
        if value is None:
            raise ConfigError(f"form field {name!r} is longer than {MAX_OPTION_BYTES} bytes")
        total += len(value)
        if total > max_bytes:
            raise ImageTooLargeError(f"the request body exceeds {max_bytes} bytes")
        try:
            fields[name] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"form field {name!r} is not UTF-8 text") from None
    if image is None:
        raise InvalidImageError(f"the multipart body has no {IMAGE_FIELD!r} field")
    return image, fields


async def _read_body(request: web.Request, max_bytes: int, arrived: Arrived) -> bytes:
    """The raw body, in chunks up to ``max_bytes`` (``request.read()`` would raise the
    reader's buffers to the app's limit: a gzip bomb inflated 25 MB a step)."""
    data = bytearray()
    try:
        while chunk := await request.content.read(_CHUNK):
            arrived(len(chunk))
            data += chunk
            if len(data) > max_bytes:
                raise ImageTooLargeError(f"the request body exceeds {max_bytes} bytes")
    except web.RequestPayloadError as exc:  # a Content-Encoding that does not decode, ...
        raise InvalidImageError("the request body cannot be read (a Content-Encoding that "
                                "does not decode, a broken chunk)") from exc
    return bytes(data)


async def read_upload(request: web.Request, max_bytes: int,
                      arrived: Arrived) -> tuple[bytes, dict[str, str]]:
    """The image bytes and the option parameters of a protect request; ``arrived`` is told
    the length of each piece of the body as it is read.

    Raises:
        InvalidImageError: no image (an empty body, a form without ``image``, a malformed form).
        ImageTooLargeError: the body is longer than ``max_bytes``.
        ConfigError: options given twice, too long or not text.
    """
    params = _unique(request.query.items(), "query string")
    if request.content_type.startswith("multipart/"):
        data, fields = await _read_multipart(request, max_bytes, arrived)
        both = set(params) & set(fields)
        if both:
            raise ConfigError(f"option(s) {', '.join(sorted(both))} given in both the query "
                             "string and the form")
        params.update(fields)
    else:
        data = await _read_body(request, max_bytes, arrived)
    if not data:
        raise InvalidImageError("the request carries no image (empty body)")
    return data, params
