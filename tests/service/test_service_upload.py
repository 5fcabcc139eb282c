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
