"""Reading a streamed body up to a limit: the whole body, or every byte still to send."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from grasp_sdk.bodies import aread_within, read_within, scanned

CHUNKS = [b"abc", b"", b"defg", b"hi"]  # 9 bytes


def generated(chunks: list[bytes], pulled: list[int]) -> Iterator[bytes]:
    for chunk in chunks:
        pulled.append(len(chunk))
        yield chunk


async def agenerated(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


@pytest.mark.parametrize(("limit", "whole", "read_first"),
                         [(9, True, 4), (100, True, 4), (8, False, 4), (3, False, 3),
                          (0, False, 1)])
def test_read_within(limit: int, whole: bool, read_first: int) -> None:
    pulled: list[int] = []
    out = read_within(generated(CHUNKS, pulled), limit)
    assert len(pulled) == read_first  # reading stops once past the limit
    if whole:
        assert out == b"abcdefghi"
        return
    assert not isinstance(out, bytes)
    assert b"".join(out) == b"abcdefghi"


def test_empty_body_is_whole() -> None:
    assert read_within(iter(()), 0) == b""


@pytest.mark.parametrize(("limit", "whole"), [(9, True), (8, False), (3, False)])
async def test_aread_within(limit: int, whole: bool) -> None:
    out = await aread_within(agenerated(CHUNKS), limit)
    if whole:
        assert out == b"abcdefghi"
        return
    assert not isinstance(out, bytes)
    assert b"".join([chunk async for chunk in out]) == b"abcdefghi"


def test_a_scanned_stream_stops_before_the_first_byte_of_an_image(jpeg: bytes) -> None:
    body = b"a" * 5000 + jpeg + b"z" * 100
    stream = scanned((body[i:i + 333] for i in range(0, len(body), 333)), lambda: KeyError("x"))
    sent = b""
    with pytest.raises(KeyError):
        while True:
            sent += next(stream)
    assert body.startswith(sent) and len(sent) <= 5000


def test_a_scanned_stream_without_an_image_goes_whole() -> None:
    body = bytes(range(256)) * 40
    chunks = [body[i:i + 100] for i in range(0, len(body), 100)]
    assert b"".join(scanned(iter(chunks), lambda: KeyError("image"))) == body
