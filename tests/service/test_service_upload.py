"""Malformed multipart bodies (found by ``grasp-guard bench fuzz``) are 400 JSON, never 500."""

from __future__ import annotations

import warnings
from typing import Literal

import pytest
from _service_helpers import ServiceFactory
from aiohttp.multipart import BadContentDispositionHeader

IMAGE = b"\xff\xd8\xff\xe0 not decoded: the form is refused first"


def form(*parts: bytes, boundary: bytes = b"b0undary") -> tuple[str, bytes]:
    """A multipart/form-data body of raw parts (headers, blank line, body)."""
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return f"multipart/form-data; boundary={boundary.decode()}", body + b"--" + boundary + b"--\r\n"


def image_part(*headers: bytes) -> bytes:
    return b"\r\n".join([b'Content-Disposition: form-data; name="image"', *headers]) \
        + b"\r\n\r\n" + IMAGE


@pytest.mark.parametrize(("content_type", "body"), [
    pytest.param(*form(image_part(b"X-Junk: " + b"a" * 9000)), id="part-header-too-long"),
    pytest.param(*form(image_part(*(b"X-%d: 1" % i for i in range(200)))), id="too-many-headers"),
    pytest.param(*form(image_part(b"no colon here")), id="header-without-colon"),
    pytest.param(*form(b"Content-Type: image/jpeg\r\n\r\n" + IMAGE), id="no-disposition"),
    pytest.param(*form(b'Content-Disposition: form-data; name="_charset_"\r\n\r\n' + b"x" * 40,
                       image_part()), id="charset-part-too-long"),
    pytest.param(*form(b'Content-Disposition: form-data; name="_charset_"\r\n\r\nutf-8',
                       image_part(), boundary=b"b" * 40), id="charset-part-long-boundary"),
    pytest.param("multipart/form-data", form(image_part())[1], id="no-boundary"),
    pytest.param(*form(image_part(), boundary=b"b" * 71), id="boundary-too-long"),
])
async def test_a_malformed_form_is_an_invalid_image(service: ServiceFactory, content_type: str,
                                                    body: bytes) -> None:
    client = await service()
    resp = await client.post("/v1/protect", data=body, headers={"Content-Type": content_type})
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["kind"] == "invalid_image" and "malformed multipart body" in error["message"]


@pytest.mark.parametrize("warning_action", ["error", "ignore"])
async def test_a_malformed_content_disposition_is_refused_whether_warnings_raise_or_not(
        service: ServiceFactory, warning_action: Literal["error", "ignore"]) -> None:
    client = await service()
    content_type, body = form(b"Content-Disposition: form-data; name=\r\n\r\n" + IMAGE)
    with warnings.catch_warnings():
        warnings.simplefilter(warning_action, BadContentDispositionHeader)
        resp = await client.post("/v1/protect", data=body, headers={"Content-Type": content_type})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["kind"] == "invalid_image" and "malformed multipart body" in error["message"]


def option_part(name: str, value: bytes = b"x") -> bytes:
    return f'Content-Disposition: form-data; name="{name}"'.encode() + b"\r\n\r\n" + value


@pytest.mark.parametrize(("parts", "status", "message"), [
    pytest.param([option_part(f"o{i}") for i in range(65)], 400, "more than 64 option fields",
                 id="too-many-fields"),
    pytest.param([option_part(f"o{i}", b"x" * 1000) for i in range(40)], 413, "exceeds 32768",
                 id="fields-past-max-bytes"),
    pytest.param([option_part("preset"), option_part("preset"),
                  b'Content-Disposition: form-data; name="image"\r\n\r\n' + b"x" * 40_000],
                 400, "given twice", id="a-repeated-option-before-a-body-past-max-bytes"),
    pytest.param([option_part("n" * 5000)], 400, "longer than 64 characters",
                 id="a-long-name"),
])
async def test_a_form_is_bounded_as_it_is_read(service: ServiceFactory, parts: list[bytes],
                                               status: int, message: str) -> None:
    """Every field counts toward max_bytes, and a form is refused at the first field past a
    bound, not once it is all in memory; no error echoes a field's name at length."""
    client = await service(max_bytes=32768)
    content_type, body = form(*parts, image_part())
    resp = await client.post("/v1/protect", data=body, headers={"Content-Type": content_type})
    assert resp.status == status
    assert message in (await resp.json())["error"]["message"]
    assert len(await resp.read()) < 200


@pytest.mark.parametrize("content_type", ["image/jpeg", "multipart/form-data; boundary=b"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_a_body_whose_encoding_does_not_decode_is_an_invalid_image(
        service: ServiceFactory, content_type: str, encoding: str) -> None:
    client = await service()
    resp = await client.post("/v1/protect", data=b"\x1f\x8b\x08\x00" + IMAGE,
                             headers={"Content-Type": content_type, "Content-Encoding": encoding})
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["kind"] == "invalid_image"


async def test_a_compressed_body_is_inflated_no_further_than_the_limit(
        service: ServiceFactory) -> None:
    # 2 MB of gzip inflating to 2 GB: request.read() raised aiohttp's buffers to the app's
    # limit and inflated 25 MB a step, hundreds of MB a request
    import io
    import tracemalloc
    import zlib

    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(2**20)
    bomb = b"".join(deflate.compress(zeros) for _ in range(2048)) + deflate.flush()
    client = await service()
    tracemalloc.start()
    try:
        resp = await client.post("/v1/protect", data=io.BytesIO(bomb), headers={
            "Content-Type": "image/jpeg", "Content-Encoding": "gzip"})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert resp.status == 413 and (await resp.json())["error"]["kind"] == "too_large"
    assert peak < 96 * 2**20, f"{peak / 2**20:.0f} MiB held"


async def test_a_malformed_form_is_not_quoted_back(service: ServiceFactory) -> None:
    # aiohttp's message quotes the line's first bytes: here the image's
    secret = b"\xff\xd8\xff\xe0PRIVATE-PIXELS" + b"p" * 9000
    content_type, body = form(b'Content-Disposition: form-data; name="image"\r\n' + secret)
    client = await service()
    resp = await client.post("/v1/protect", data=body, headers={"Content-Type": content_type})
    assert resp.status == 400
    assert b"PRIVATE" not in await resp.read()
