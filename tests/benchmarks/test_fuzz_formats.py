"""The length and dimension fields the fuzzer rewrites are where each decoder reads them."""

from __future__ import annotations

import io

import pillow_heif
import pytest
from PIL import Image

from grasp_guard.benchmarks.fuzz_cases import seed_images
from grasp_guard.benchmarks.fuzz_formats import Field, layout


@pytest.mark.parametrize(("name", "sides"), [
    ("face.png", [256, 256]),
    ("face.jpg", [256, 256]),  # SOF: lines, samples per line
    ("small.jpg", [36, 48]),  # 36 lines of 48 samples
    ("face.webp", [255, 255, 256, 256]),  # VP8X canvas - 1, then the VP8 frame
    ("face.heic", [256, 256]),  # ispe
    ("small.gif", [48, 36, 48, 36]),  # logical screen, then the first image
])
def test_dimension_fields_hold_the_sides(name: str, sides: list[int]) -> None:
    data = seed_images()[name]
    assert [f.read(data) & 0x3FFF for f in layout(data).dimensions] == sides


def test_a_png_size_lie_keeps_a_valid_crc_so_the_decoder_reads_it() -> None:
    data = bytearray(seed_images()["small.png"])
    width = layout(bytes(data)).dimensions[0]
    width.write(data, 100_000)
    assert Image.open(io.BytesIO(bytes(data))).size == (100_000, 36)


def test_a_heic_size_lie_reaches_libheif() -> None:
    data = bytearray(seed_images()["small.heic"])
    for f in layout(bytes(data)).dimensions:
        f.write(data, 30_000)
    with pytest.raises(ValueError, match="Invalid image size"):
        pillow_heif.open_heif(bytes(data)).to_pillow()


def test_length_fields_match_the_containers() -> None:
    png = seed_images()["small.png"]
    assert layout(png).lengths[0] == Field(8, 4, "big")  # IHDR's length
    assert layout(png).lengths[0].read(png) == 13
    webp = seed_images()["small-rgba.webp"]
    assert layout(webp).lengths[0].read(webp) == len(webp) - 8  # RIFF size
    heic = seed_images()["small.heic"]
    assert layout(heic).lengths[0].read(heic) == int.from_bytes(heic[:4], "big")  # ftyp


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n\xff\xff", b"\xff\xd8\xff\xe0\xff",
                                  b"RIFF\x00\x00\x00\x00WEBPVP8X", b"not an image at all"])
def test_walkers_stop_quietly_on_broken_input(data: bytes) -> None:
    layout(data)


def test_a_field_wraps_values_to_its_width() -> None:
    data = bytearray(4)
    Field(1, 2, "little").write(data, 0x12345)
    assert bytes(data) == b"\x00\x45\x23\x00"
