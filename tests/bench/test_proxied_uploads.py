"""The judge of uploads landed through the proxy: whole (protected or original) or not."""

from __future__ import annotations

import asyncio
import io
import itertools

import numpy as np
import pytest
from PIL import Image
from proxied_uploads import (
    CAPTION,
    Landed,
    Site,
    judge,
    serve_site,
    unique_photo,
    upload_client,
)

BOUNDARY = "b0und"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def body(parts: dict[str, bytes]) -> bytes:
    out = b""
    for name, content in parts.items():
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                .encode() + content + b"\r\n")
    return out + f"--{BOUNDARY}--\r\n".encode()


def reencoded(photo: bytes, size: tuple[int, int] | None = None) -> bytes:
    """``photo`` with changed pixels (as protection changes them), maybe resized."""
    with Image.open(io.BytesIO(photo)) as image:
        pixels = np.asarray(image.convert("RGB")).copy()
    pixels[50:100, 50:100] ^= 8
    out = Image.fromarray(pixels)
    if size is not None:
        out = out.resize(size)
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=90)
    return buf.getvalue()


PHOTO = unique_photo(7)


@pytest.mark.parametrize(("parts", "verdict"), [
    ({"photo": PHOTO, "caption": CAPTION}, "original"),
    ({"photo": reencoded(PHOTO), "caption": CAPTION}, "protected"),
    ({"photo": PHOTO[: len(PHOTO) // 2], "caption": CAPTION}, "half-rewritten"),
    ({"photo": reencoded(PHOTO)[:-200], "caption": CAPTION}, "half-rewritten"),
    ({"photo": reencoded(PHOTO, (100, 110)), "caption": CAPTION}, "half-rewritten"),
    ({"photo": reencoded(PHOTO), "caption": b"caption: a pho"}, "half-rewritten"),
    ({"photo": reencoded(PHOTO)}, "half-rewritten"),
])
def test_judge(parts: dict[str, bytes], verdict: str) -> None:
    assert judge(PHOTO, body(parts), CONTENT_TYPE).split(":")[0] == verdict


def test_a_body_cut_inside_its_parts_is_half_rewritten() -> None:
    whole = body({"photo": reencoded(PHOTO), "caption": CAPTION})
    assert judge(PHOTO, whole[:-300], CONTENT_TYPE).startswith("half-rewritten")


def test_each_photo_has_bytes_of_its_own() -> None:
    assert len({unique_photo(n) for n in range(5)}) == 5


async def test_an_upload_straight_to_the_site_lands_as_the_original() -> None:
    landed = Landed()
    site = Site(landed)
    stop = asyncio.Event()
    async with serve_site(site) as url:
        task = asyncio.create_task(upload_client(None, url, site, itertools.count(), stop, 30))
        while not landed.answers:
            await asyncio.sleep(0.01)
        stop.set()
        await task
    assert landed.verdicts["original"] == sum(landed.answers.values()) >= 1
    assert landed.answers.keys() == {200} and not landed.half_rewritten and not landed.lost
