import io

import pytest
from _media_builders import encoded, gradient
from PIL import Image

from grasp_guard.media.png_chunks import (
    CHUNK_OVERHEAD,
    PADDING_TYPE,
    Chunk,
    padding_chunk,
    read_chunks,
)


def test_read_chunks_round_trips() -> None:
    png = encoded(gradient(), "PNG")
    chunks = read_chunks(png)
    assert chunks[0].type == b"IHDR" and chunks[-1].type == b"IEND"
    assert png[8:] == b"".join(c.to_bytes() for c in chunks)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[:-20], "truncated"),
        (lambda d: d[:40] + bytes([d[40] ^ 1]) + d[41:], "CRC"),
        (lambda d: b"\x89PNX" + d[4:], "signature"),
        (lambda d: d[:-12], "IEND"),
    ],
)
def test_read_chunks_rejects_damage(mutate, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_chunks(mutate(encoded(gradient(), "PNG")))


@pytest.mark.parametrize("n", [12, 13, 100, 70_000])
def test_padding_chunk_is_exact_and_ignored_by_decoders(n: int) -> None:
    png = encoded(gradient(), "PNG")
    padded = png[:-12] + padding_chunk(n) + png[-12:]
    assert len(padded) == len(png) + n
    assert read_chunks(padded)[-2] == Chunk(PADDING_TYPE, bytes(n - CHUNK_OVERHEAD))
    assert Image.open(io.BytesIO(padded)).convert("RGB").tobytes() == gradient().tobytes()


def test_padding_chunk_minimum() -> None:
    with pytest.raises(ValueError):
        padding_chunk(11)


@pytest.mark.parametrize(
    ("kind", "safe"), [(b"grPd", True), (b"iDOT", False), (b"tEXt", True), (b"gAMA", False)]
)
def test_safe_to_copy_bit(kind: bytes, safe: bool) -> None:
    assert Chunk(kind, b"").safe_to_copy is safe
