"""The aiohttp client middleware, end to end against a local server that records uploads."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from _sdk_site import local_policy
from aiohttp import web
from aiohttp.test_utils import TestServer
from grasp_sdk import (
    GraspClient,
    GraspMiddleware,
    ProtectOptions,
    ProtectResult,
    RewriteError,
    UploadRewrite,
)

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


class Recorder:
    """Records each upload as the server's multipart parser (or raw read) sees it."""

    def __init__(self) -> None:
        self.uploads: list[dict] = []

    async def upload(self, request: web.Request) -> web.Response:
        record: dict = {"headers": dict(request.headers)}
        if request.content_type.startswith("multipart/"):
            parts = {}
            async for part in await request.multipart():
                assert isinstance(part, aiohttp.BodyPartReader)
                parts[part.name] = bytes(await part.read())
            record["parts"] = parts
        else:
            record["body"] = await request.read()
        self.uploads.append(record)
        return web.Response(text="stored")

    async def protect(self, request: web.Request) -> web.Response:
        """A stand-in protection service: appends bytes after the image."""
        body = await request.read()
        return web.Response(body=body + b"SERVICE", content_type=request.content_type,
                            headers={"X-Grasp-Report": json.dumps({"faces": 1,
                                                                   "protected": True})})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/upload", self.upload)
        app.router.add_route("*", "/rupload/{id}", self.upload)
        app.router.add_post("/v1/protect", self.protect)
        return app


@pytest.fixture
async def recorder_url(aiohttp_server: ServerFactory) -> tuple[Recorder, str]:
    recorder = Recorder()
    server = await aiohttp_server(recorder.app())
    return recorder, str(server.make_url("")).rstrip("/")


async def test_multipart_upload_is_protected(recorder_url, fake_protect, jpeg: bytes) -> None:
    recorder, url = recorder_url
    seen: list[UploadRewrite] = []
    middleware = GraspMiddleware(fake_protect, local_policy(), on_rewrite=seen.append)
    form = aiohttp.FormData()
    form.add_field("caption", "me\r\n--at the beach")
    form.add_field("file", jpeg, filename="me.jpg", content_type="image/jpeg")
    async with (aiohttp.ClientSession(middlewares=(middleware,)) as session,
                session.post(url + "/upload", data=form) as resp):
        assert resp.status == 200
    (upload,) = recorder.uploads
    assert upload["parts"] == {"caption": b"me\r\n--at the beach",
                               "file": fake_protect.transform(jpeg)}
    assert seen[0].changed and seen[0].site == "local"


async def test_raw_upload_headers_fixed(
    recorder_url, fake_protect, jpeg: bytes, tmp_path: Path,
) -> None:
    recorder, url = recorder_url
    path = tmp_path / "me.jpg"
    path.write_bytes(jpeg)
    middleware = GraspMiddleware(fake_protect, local_policy())
    async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
        with path.open("rb") as file:  # a file payload, read through as_bytes()
            async with session.post(url + "/rupload/fb_uploader_1", data=file,
                                    headers={"X-Entity-Length": str(len(jpeg)),
                                             "Offset": "0"}) as resp:
                assert resp.status == 200
    (upload,) = recorder.uploads
    new = fake_protect.transform(jpeg)
    assert upload["body"] == new
    assert upload["headers"]["X-Entity-Length"] == str(len(new))
    assert upload["headers"]["Content-Length"] == str(len(new))


async def test_unmatched_and_non_image_requests_pass_untouched(recorder_url, fake_protect) -> None:
    recorder, url = recorder_url
    middleware = GraspMiddleware(fake_protect, local_policy(host="elsewhere.test"))
    async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
        async with session.put(url + "/upload", data=b"\xff\xd8\xff not for this host"):
            pass
        async with session.get(url + "/upload"):
            pass
    assert recorder.uploads[0]["body"] == b"\xff\xd8\xff not for this host"
    assert not fake_protect.calls


async def test_on_failure_pass_sends_the_original(recorder_url, fake_protect, jpeg: bytes) -> None:
    recorder, url = recorder_url
    fake_protect.mode = "fail"
    middleware = GraspMiddleware(fake_protect, local_policy())
    async with (aiohttp.ClientSession(middlewares=(middleware,)) as session,
                session.put(url + "/upload", data=jpeg) as resp):
        assert resp.status == 200
    assert recorder.uploads[0]["body"] == jpeg


async def test_on_failure_block_raises(recorder_url, fake_protect, jpeg: bytes) -> None:
    recorder, url = recorder_url
    fake_protect.mode = "fail"
    async with aiohttp.ClientSession(
            middlewares=(GraspMiddleware(fake_protect, local_policy()),)) as session:
        with pytest.raises(RewriteError, match="local-block"):
            await session.put(url.replace("127.0.0.1", "localhost") + "/upload", data=jpeg)
    assert recorder.uploads == []


async def test_with_a_real_client_on_the_same_session(recorder_url, jpeg: bytes) -> None:
    """The service call goes through the same session without being taken for an upload."""
    recorder, url = recorder_url
    clients: list[GraspClient] = []

    async def protect(data: bytes, options: ProtectOptions) -> ProtectResult:
        return await clients[0].protect(data, options)

    middleware = GraspMiddleware(protect, local_policy())
    async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
        clients.append(GraspClient(url, session=session))
        async with session.put(url + "/upload", data=jpeg) as resp:
            assert resp.status == 200
    assert recorder.uploads[0]["body"] == jpeg + b"SERVICE"
