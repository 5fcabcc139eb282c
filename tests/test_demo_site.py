"""The demo photo site: its page, the upload it keeps, what it serves back, over HTTPS."""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from grasp_guard.demo_site import (
    RECEIVED_PATH,
    UPLOAD_FIELD,
    UPLOAD_PATH,
    create_app,
    make_certs,
    serve,
)

PHOTO = b"\xff\xd8\xff\xe0 not really a jpeg \r\n--x\r\n\xff\xd9"


def form(field: str = UPLOAD_FIELD, data: bytes = PHOTO) -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field(field, data, filename="me.jpg", content_type="image/jpeg")
    body.add_field("caption", "hello")
    return body


@pytest.fixture
async def client(aiohttp_client) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app())


async def test_the_page_has_a_file_input_posting_to_the_upload_path(client: TestClient) -> None:
    resp = await client.get("/")
    page = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert '<input type="file"' in page
    assert f'fetch("{UPLOAD_PATH}"' in page and f'form.append("{UPLOAD_FIELD}"' in page


async def test_nothing_is_served_before_an_upload(client: TestClient) -> None:
    assert (await client.get(RECEIVED_PATH)).status == 404
    assert (await client.get(RECEIVED_PATH + ".json")).status == 404


async def test_the_last_upload_is_served_back_byte_for_byte(client: TestClient) -> None:
    first = await client.post(UPLOAD_PATH, data=form(data=b"first"))
    assert first.status == 200
    resp = await client.post(UPLOAD_PATH, data=form())
    described = await resp.json()
    assert described == {"filename": "me.jpg", "content_type": "image/jpeg",
                         "length": len(PHOTO), "sha256": hashlib.sha256(PHOTO).hexdigest()}
    back = await client.get(RECEIVED_PATH)
    assert await back.read() == PHOTO and back.content_type == "image/jpeg"
    assert await (await client.get(RECEIVED_PATH + ".json")).json() == described


async def test_an_upload_without_the_photo_field_is_refused(client: TestClient) -> None:
    resp = await client.post(UPLOAD_PATH, data=form(field="other"))
    assert resp.status == 400
    assert (await client.get(RECEIVED_PATH)).status == 404


async def test_it_serves_https_with_a_certificate_its_ca_signed(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    trusting = ssl.create_default_context(cafile=certs.ca)
    async with serve(create_app(), certs) as port, aiohttp.ClientSession() as session:
        async with session.get(f"https://localhost:{port}/", ssl=trusting) as resp:
            assert resp.status == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(f"https://localhost:{port}/", ssl=ssl.create_default_context())
