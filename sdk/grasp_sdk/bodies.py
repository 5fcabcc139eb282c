"""Reading a request body of unknown length for the hook, within a limit, without losing it.

A client may hand its adapter a stream (a generator, a file, a multipart form of files):
the adapter reads it up to the site's ``max_bytes``. A body that ends within the limit is
the hook's; a longer one goes out untouched, sent as what was read followed by the rest,
or, to a ``block`` site, through a scan (:func:`scanned`) that stops it before an image.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator

from grasp_sdk.sniff import carries_image

# Bytes held back while a body streams: as many as carries_image reads to tell an image from
# where it starts (up to 4096 characters of a base64 run from a JPEG's start, the symbol
# before the SOI's match included; 1536 raw bytes; a signature's match is under 140
# characters), so that a look cut short by a batch's end is made whole on the next: at least
# sniff's _BASE64_BUDGET.
_HOLD = 4096
_BATCH = 64 * 2**10  # bytes gathered before each look, so that tiny chunks cost no more


class _Prefix:
    """The chunks read so far, and whether they passed the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; True once more than ``limit`` bytes are kept."""
        self.chunks.append(chunk)
        self.size += len(chunk)
        return self.size > self.limit

    def body(self) -> bytes:
        return b"".join(self.chunks)


def read_within(chunks: Iterable[bytes], limit: int) -> bytes | Iterator[bytes]:
    """Read ``chunks`` until they end or pass ``limit`` bytes.

    Returns:
        The whole body when it ended within ``limit`` bytes; otherwise an iterator of the
        chunks read, then the rest of ``chunks``, to send in its place.
    """
    rest = iter(chunks)
    prefix = _Prefix(limit)
    for chunk in rest:
        if prefix.add(chunk):
            return itertools.chain(prefix.chunks, rest)
    return prefix.body()


async def aread_within(chunks: AsyncIterable[bytes],
                       limit: int) -> bytes | AsyncIterator[bytes]:
    """:func:`read_within` for an asynchronous stream."""
    rest = aiter(chunks)
    prefix = _Prefix(limit)
    async for chunk in rest:
        if prefix.add(chunk):
            return _achain(prefix.chunks, rest)
    return prefix.body()


async def _achain(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in first:
        yield chunk
    async for chunk in rest:
        yield chunk


def scanned(chunks: Iterable[bytes], refusal: Callable[[], Exception]) -> Iterator[bytes]:
    """``chunks`` as they come, held back by a few KB, until one shows an image: then
    ``refusal()`` is raised, and neither that image's first bytes nor any after go out.
    Small chunks are gathered to ``_BATCH`` bytes before each look."""
    held = bytearray()
    for chunk in chunks:
        held += chunk
        if len(held) >= _HOLD + _BATCH:
            yield _release(held, refusal)
    if held:
        yield _release(held, refusal, keep=0)


async def ascanned(chunks: AsyncIterable[bytes],
                   refusal: Callable[[], Exception]) -> AsyncIterator[bytes]:
    """:func:`scanned` for an asynchronous stream."""
    held = bytearray()
    async for chunk in chunks:
        held += chunk
        if len(held) >= _HOLD + _BATCH:
            yield _release(held, refusal)
    if held:
        yield _release(held, refusal, keep=0)


def _release(held: bytearray, refusal: Callable[[], Exception], keep: int = _HOLD) -> bytes:
    """What of ``held`` may go once it is seen to hold no image: all but the last ``keep``
    bytes, taken out of it."""
    if carries_image(bytes(held)):
        raise refusal()
    out = bytes(held[: len(held) - keep])
    del held[: len(held) - keep]
    return out
