"""The httpx transports and the requests adapter, end to end against a local site.

Every case runs with each client: ``httpx.Client`` through :class:`GraspTransport`,
``httpx.AsyncClient`` through :class:`AsyncGraspTransport`, and a requests session with
:class:`GraspAdapter` mounted. The protection service is a stand-in on the same local
server (it appends ``MARK`` to each image), called through the real service clients.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import requests
from _sdk_site import MARK, LocalSite, Upload, closed_port_url, local_policy
from grasp_sdk import (
    GraspClient,
    Policy,
    ProtectOptions,
    ProtectResult,
    RewriteError,
    SyncGraspClient,
    UnprotectableUpload,
    UploadRewrite,
    parse_policy,
)
from grasp_sdk.httpx_transport import AsyncGraspTransport, GraspTransport
from grasp_sdk.requests_adapter import GraspAdapter

CLIENTS = ("httpx", "httpx-async", "requests")
SERVICE_DOWN = {"max_retries": 0, "connect_timeout": 2.0, "total_timeout": 5.0}


@dataclass
class Uploader:
    """Posts through one kind of client wrapped by its GRASP adapter.

    ``stream`` (a list of chunks) is sent as the client's own kind of streaming body: a
    generator (an async one for ``httpx.AsyncClient``), so its length is unknown.
    """

    kind: str
    service: str
    policy: Policy
    service_options: dict[str, Any] = field(default_factory=dict)
    rewrites: list[UploadRewrite] = field(default_factory=list)

    def post(self, url: str, *, stream: list[bytes] | None = None,
             **kwargs: Any) -> int:
        if self.kind == "httpx-async":
            return asyncio.run(self._post_async(url, stream, kwargs))
        with SyncGraspClient(self.service, **self.service_options) as grasp:
            if self.kind == "httpx":
                return self._post_httpx(grasp, url, stream, kwargs)
            return self._post_requests(grasp, url, stream, kwargs)

    def _post_httpx(self, grasp: SyncGraspClient, url: str, stream: list[bytes] | None,
                    kwargs: dict[str, Any]) -> int:
        transport = GraspTransport(grasp, self.policy, on_rewrite=self.rewrites.append)
        with httpx.Client(transport=transport) as http:
            if stream is not None:
                kwargs["content"] = iter(stream)
            return http.post(url, **kwargs).status_code

    def _post_requests(self, grasp: SyncGraspClient, url: str, stream: list[bytes] | None,
                       kwargs: dict[str, Any]) -> int:
        with requests.Session() as http:
            http.mount("http://", GraspAdapter(grasp, self.policy,
                                               on_rewrite=self.rewrites.append))
            if "content" in kwargs:
                kwargs["data"] = kwargs.pop("content")
            if stream is not None:
                kwargs["data"] = iter(stream)
            return http.post(url, **kwargs).status_code

    async def _post_async(self, url: str, stream: list[bytes] | None,
                          kwargs: dict[str, Any]) -> int:
        async with GraspClient(self.service, **self.service_options) as grasp:
            transport = AsyncGraspTransport(grasp, self.policy,
                                            on_rewrite=self.rewrites.append)
            async with httpx.AsyncClient(transport=transport) as http:
                if stream is not None:
                    kwargs["content"] = _agen(stream)
                return (await http.post(url, **kwargs)).status_code


async def _agen(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


@pytest.fixture(scope="module")
def site() -> Iterator[LocalSite]:
    with LocalSite() as running:
        yield running


@pytest.fixture(params=CLIENTS)
def make_uploader(request: pytest.FixtureRequest,
                  site: LocalSite) -> Iterator[Callable[..., Uploader]]:
    """``make_uploader(policy=local_policy(), service=site.url, **service_options)``."""
    site.uploads.clear()
    site.protected.clear()

    def make(policy: Policy | None = None, service: str | None = None,
             **service_options: Any) -> Uploader:
        return Uploader(request.param, service or site.url, policy or local_policy(),
                        service_options)

    yield make


def only_upload(site: LocalSite) -> Upload:
    (upload,) = site.uploads
    return upload


def sha256_field(data: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"


def test_multipart_upload_is_protected(site: LocalSite, make_uploader, jpeg: bytes) -> None:
    uploader = make_uploader()
    status = uploader.post(site.url + "/upload", data={"caption": "me\r\n--at the beach"},
                           files={"file": ("me.jpg", jpeg, "image/jpeg")})
    assert status == 200
    upload = only_upload(site)
    assert upload.parts == {"caption": b"me\r\n--at the beach", "file": jpeg + MARK}
    assert upload.header("Content-Length") == str(len(upload.body))
    (rewrite,) = uploader.rewrites
    assert rewrite.changed and rewrite.site == "local" and rewrite.body == upload.body
    assert site.protected == [jpeg]


def test_raw_upload_headers_follow_the_body(site: LocalSite, make_uploader,
                                            jpeg: bytes) -> None:
    status = make_uploader().post(
        site.url + "/rupload/fb_uploader_1", content=jpeg,
        headers={"Content-Type": "image/jpeg", "X-Entity-Length": str(len(jpeg)),
                 "Offset": "0", "Content-Digest": sha256_field(jpeg)})
    assert status == 200
    upload = only_upload(site)
    assert upload.body == jpeg + MARK
    assert upload.header("Content-Length") == upload.header("X-Entity-Length") == \
        str(len(upload.body))
    assert upload.header("Content-Digest") == sha256_field(upload.body)
    assert upload.header("Offset") == "0" and upload.header("Content-Type") == "image/jpeg"


def test_base64_in_json_is_protected(site: LocalSite, make_uploader, jpeg: bytes) -> None:
    avatar = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    status = make_uploader().post(site.url + "/api/users/me",
                                  json={"name": "me", "avatar": avatar})
    assert status == 200
    upload = only_upload(site)
    sent = json.loads(upload.body)
    assert sent["name"] == "me"
    assert base64.b64decode(sent["avatar"].split(",", 1)[1]) == jpeg + MARK
    assert upload.header("Content-Length") == str(len(upload.body))


def test_service_down_pass_sends_the_original(site: LocalSite, make_uploader,
                                              jpeg: bytes) -> None:
    uploader = make_uploader(service=closed_port_url(), **SERVICE_DOWN)
    assert uploader.post(site.url + "/upload", content=jpeg) == 200
    upload = only_upload(site)
    assert upload.body == jpeg and upload.header("Content-Length") == str(len(jpeg))
    assert uploader.rewrites == []  # a failure is not a rewrite


def test_service_down_block_refuses_the_upload(site: LocalSite, make_uploader,
                                               jpeg: bytes) -> None:
    uploader = make_uploader(service=closed_port_url(), **SERVICE_DOWN)
    with pytest.raises(RewriteError, match="local-block.*ServiceUnavailable"):
        uploader.post(site.url.replace("127.0.0.1", "localhost") + "/upload", content=jpeg)
    assert site.uploads == []


def test_other_hosts_and_methods_untouched(site: LocalSite, make_uploader,
                                           jpeg: bytes) -> None:
    uploader = make_uploader(policy=local_policy(host="elsewhere.test"))
    assert uploader.post(site.url + "/upload", content=jpeg) == 200
    assert only_upload(site).body == jpeg
    assert site.protected == [] and uploader.rewrites == []


def test_streamed_body_within_max_bytes_is_protected(site: LocalSite, make_uploader,
                                                     jpeg: bytes) -> None:
    chunks = [jpeg[:100], jpeg[100:]]
    assert make_uploader().post(site.url + "/upload", stream=chunks) == 200
    upload = only_upload(site)
    assert upload.body == jpeg + MARK
    # Sent as it was framed: chunked, now around the protected bytes.
    assert upload.header("Transfer-Encoding") == "chunked"
    assert upload.header("Content-Length") is None


def test_streamed_body_past_max_bytes_goes_out_untouched(
        site: LocalSite, make_uploader, make_image, caplog: pytest.LogCaptureFixture,
) -> None:
    big = make_image("JPEG", size=(64, 64), noise=True)
    assert len(big) > 2000  # several chunks, well past the site's 1000
    chunks = [big[i:i + 700] for i in range(0, len(big), 700)]
    with caplog.at_level(logging.INFO, logger="grasp_sdk.guard"):
        assert make_uploader().post(site.url + "/small/upload", stream=chunks) == 200
    assert only_upload(site).body == big and site.protected == []
    assert "streamed body longer than max_bytes 1000" in caplog.text


def test_declared_length_past_max_bytes_is_not_read(
        site: LocalSite, make_uploader, make_image, caplog: pytest.LogCaptureFixture,
) -> None:
    big = make_image("JPEG", size=(64, 64), noise=True)
    with caplog.at_level(logging.INFO, logger="grasp_sdk.guard"):
        assert make_uploader().post(site.url + "/small/upload", content=big) == 200
    assert only_upload(site).body == big and site.protected == []
    assert f"body of {len(big)} bytes exceeds max_bytes 1000" in caplog.text


@pytest.mark.parametrize("declared", [False, True])
def test_a_block_site_stops_a_long_body_before_its_photo(
        site: LocalSite, make_uploader, make_image, declared: bool) -> None:
    big = make_image("JPEG", size=(64, 64), noise=True)
    body = bytes(3000) + big  # a photo after 3000 bytes of something else
    url = site.url.replace("127.0.0.1", "localhost") + "/small/upload"
    site.uploads.clear()
    sent = {"content": body} if declared else {"stream": [body[i:i + 700]
                                                          for i in range(0, len(body), 700)]}
    with pytest.raises(Exception) as refused:
        make_uploader().post(url, **sent)
    assert _caused_by(refused.value, UnprotectableUpload)
    assert all(big[:64] not in upload.body for upload in site.uploads)


def test_a_block_site_lets_a_long_body_without_a_photo_go(site: LocalSite, make_uploader) -> None:
    body = np.random.default_rng(1).integers(0, 256, 9000, dtype=np.uint8).tobytes()
    site.uploads.clear()
    chunks = [body[i:i + 700] for i in range(0, len(body), 700)]
    url = site.url.replace("127.0.0.1", "localhost") + "/small/upload"
    assert make_uploader().post(url, stream=chunks) == 200
    assert only_upload(site).body == body


def _caused_by(error: BaseException | None, kind: type[BaseException]) -> bool:
    """Whether ``error`` is ``kind`` or was raised from one (clients wrap a body's error)."""
    while error is not None:
        if isinstance(error, kind):
            return True
        error = error.__cause__ or error.__context__
    return False


@pytest.mark.parametrize("kind", ["httpx", "requests"])
def test_file_bodies_are_read_and_protected(site: LocalSite, jpeg: bytes, tmp_path,
                                            kind: str) -> None:
    path = tmp_path / "me.jpg"
    path.write_bytes(jpeg)
    site.uploads.clear()
    with path.open("rb") as file:
        Uploader(kind, site.url, local_policy()).post(site.url + "/upload", content=file)
    assert only_upload(site).body == jpeg + MARK


def test_a_redirect_sends_the_protected_photo_to_a_host_outside_the_policy(
        site: LocalSite, make_uploader, jpeg: bytes) -> None:
    # the client makes the 307's request from the application's: it held the original
    uploader = make_uploader(policy=parse_policy(
        "sites:\n  - {name: strict, hosts: ['127.0.0.1'], on_failure: block}\n"))
    follow = {"follow_redirects": True} if uploader.kind.startswith("httpx") else {}
    assert uploader.post(site.url + "/moved/1", files={"file": ("me.jpg", jpeg)}, **follow) == 200
    assert [u.header("Host").split(":")[0] for u in site.uploads] == ["127.0.0.1", "localhost"]
    assert [u.parts["file"] for u in site.uploads] == [jpeg + MARK] * 2


def test_a_file_body_redirected_goes_protected_once(site: LocalSite, jpeg: bytes,
                                                    tmp_path: Path) -> None:
    # read from a file: requests rewinds a redirected body it knows the position of
    photo = tmp_path / "me.jpg"
    photo.write_bytes(jpeg)
    site.uploads.clear()
    policy = parse_policy("sites:\n  - {name: strict, hosts: ['127.0.0.1', localhost],"
                          " on_failure: block}\n")
    with SyncGraspClient(site.url) as grasp, requests.Session() as http, photo.open("rb") as body:
        http.mount("http://", GraspAdapter(grasp, policy))
        assert http.put(site.url + "/moved/2", data=body,
                        headers={"Content-Type": "image/jpeg"}).status_code == 200
    # the target is a policy host too: the body the adapter protected is not protected again
    assert [u.body for u in site.uploads] == [jpeg + MARK] * 2


def test_service_call_through_the_same_session_is_not_an_upload(site: LocalSite,
                                                                jpeg: bytes) -> None:
    """A protect function may post through the session it protects."""
    site.uploads.clear()
    with requests.Session() as http:
        def protect(data: bytes, options: ProtectOptions) -> ProtectResult:
            answer = http.post(site.url + "/v1/protect", data=data,
                               headers={"Content-Type": "image/jpeg"})
            return ProtectResult(answer.content, "image/jpeg",
                                 json.loads(answer.headers["X-Grasp-Report"]))

        http.mount("http://", GraspAdapter(protect, local_policy()))
        assert http.put(site.url + "/upload", data=jpeg).status_code == 200
    assert only_upload(site).body == jpeg + MARK


def test_requests_bytes_header_values_are_kept(site: LocalSite, jpeg: bytes) -> None:
    site.uploads.clear()
    Uploader("requests", site.url, local_policy()).post(
        site.url + "/rupload/1", content=jpeg,
        headers={"Content-Type": b"image/jpeg", "X-Note": b"caf\xe9"})
    upload = only_upload(site)
    assert upload.body == jpeg + MARK and upload.header("X-Note") == "caf\xe9"
    assert upload.header("Content-Length") == str(len(upload.body))


def test_httpx_wraps_the_given_transport_and_a_redirect_sends_the_protected_photo(
        fake_protect, jpeg: bytes) -> None:
    # S3's 307 to a regional host: the client makes the next request from the application's
    sent: list[tuple[str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.host, request.read()))
        if request.url.host == "127.0.0.1":
            return httpx.Response(307, headers={"Location": "http://elsewhere.test/upload"})
        return httpx.Response(201)

    transport = GraspTransport(fake_protect.sync, local_policy(),
                               transport=httpx.MockTransport(handler))
    with httpx.Client(transport=transport, follow_redirects=True) as http:
        request = http.build_request("PUT", "http://127.0.0.1/upload", content=jpeg)
        assert http.send(request).status_code == 201
    protected = fake_protect.transform(jpeg)
    assert sent == [("127.0.0.1", protected), ("elsewhere.test", protected)]
    assert request.content == protected
    assert request.headers["Content-Length"] == str(len(protected))
