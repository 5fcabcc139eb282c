"""The proxy end to end: real mitmdump, the real service, a local HTTPS site, real clients.

Uploads shaped like Facebook's, Instagram's, X's (single and chunked), Mastodon's and
Discord's go through `grasp-guard proxy` over HTTPS; the site records the bytes it receives.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import json
import os
import shutil
import ssl
import subprocess
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
import requests
from _e2e_helpers import Proxy, assert_protected, multipart_parts, peak_rss, reset_peak_rss
from _e2e_site import Certs, Received, Site

pytestmark = pytest.mark.timeout(720)

FB_PATH = "/ajax/react_composer/attachments/photo/upload"
X_PATH = "/i/media/upload.json"
X_V2_INIT = "/2/media/upload/initialize"
CLIENT_TIMEOUT_S = 600
NO_PROXY_ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


@dataclass(frozen=True)
class Sent:
    """One request a client sent.

    Attributes:
        test_id: its ``X-Test-Id``.
        status: the status the client got back.
        body: the exact body sent, where the client lets the test know it.
        answer: the response body.
    """

    test_id: str
    status: int
    body: bytes | None = None
    answer: bytes = b""


@dataclass(frozen=True)
class Clients:
    """Everything a client needs to reach the site through one proxy."""

    base: str  # https://localhost:<site port>
    proxy: Proxy
    bundle: Path

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # no proxy or CA settings from the environment
        return session

    def send(self, method: str, path: str, **kwargs: Any) -> Sent:
        """Send with `requests`, knowing the exact body."""
        test_id = uuid.uuid4().hex
        headers = {"X-Test-Id": test_id, **kwargs.pop("headers", {})}
        prepared = requests.Request(method, self.base + path, headers=headers,
                                    **kwargs).prepare()
        with self.session() as session:
            resp = session.send(prepared, proxies={"https": self.proxy.url}, verify=str(self.bundle),
                                timeout=CLIENT_TIMEOUT_S)
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        return Sent(test_id, resp.status_code, body, resp.content)

    async def send_aiohttp(self, method: str, path: str, **kwargs: Any) -> Sent:
        test_id = uuid.uuid4().hex
        headers = {"X-Test-Id": test_id, **kwargs.pop("headers", {})}
        ctx = ssl.create_default_context(cafile=str(self.bundle))
        timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.request(
                method, self.base + path, headers=headers, proxy=self.proxy.url, ssl=ctx,
                **kwargs) as resp:
            return Sent(test_id, resp.status, None, await resp.read())

    def curl_form(self, path: str, fields: list[str]) -> Sent:
        test_id = uuid.uuid4().hex
        argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time",
                str(CLIENT_TIMEOUT_S), "--proxy", self.proxy.url, "--cacert", str(self.bundle),
                "-H", f"X-Test-Id: {test_id}", *(a for f in fields for a in ("-F", f)),
                self.base + path]
        done = subprocess.run(argv, env=NO_PROXY_ENV, capture_output=True, check=True,
                              timeout=CLIENT_TIMEOUT_S + 10)
        return Sent(test_id, int(done.stdout))


def clients_for(site: Site, proxy: Proxy, bundle: Path) -> Clients:
    return Clients(f"https://localhost:{site.port}", proxy, bundle)


async def gather(jobs: dict[str, Callable[[], Coroutine[Any, Any, Sent]]]) -> dict[str, Sent]:
    """Run the uploads at once: the service batches their faces, and the wait is paid once."""
    results = await asyncio.gather(*(job() for job in jobs.values()))
    return dict(zip(jobs, results, strict=True))


# --- uploads through the guarded proxy ------------------------------------------------------

@pytest.fixture(scope="module")
def uploads(site: Site, guarded: Proxy, guarded_bundle: Path, face: bytes,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Sent]:
    c = clients_for(site, guarded, guarded_bundle)
    photo = tmp_path_factory.mktemp("photo") / "me.jpg"
    photo.write_bytes(face)
    x_unordered: dict[str, Sent] = {}
    x_v2: dict[str, Sent] = {}
    thread = asyncio.to_thread
    chunked: dict[str, Sent] = {}
    jobs: dict[str, Callable[[], Coroutine[Any, Any, Sent]]] = {
        # The last APPEND of a chunked upload waits for the whole image's protection.
        "x_chunked": lambda: thread(_x_chunked, c, face, chunked),
        "x_unordered": lambda: thread(_x_chunked, c, face, x_unordered, order=(2, 0, 1)),
        "x_v2": lambda: thread(_x_v2_chunked, c, face, x_v2),
        "facebook": lambda: c.send_aiohttp("POST", FB_PATH, data=_fb_form(face)),
        "instagram": lambda: thread(c.send, "POST", "/rupload_igphoto/fb_uploader_1712", data=face,
                                    headers=_rupload_headers(face)),
        "x_media": lambda: thread(c.send, "POST", "/i/media/upload.json", files={
            "media": ("blob", face, "application/octet-stream")},
            data={"command": "APPEND", "media_id": "1712", "segment_index": "0"}),
        "x_media_data": lambda: thread(c.send, "POST", "/i/media/upload.json", data={
            "command": "APPEND", "media_id": "1713", "segment_index": "0",
            "media_data": base64.b64encode(face).decode()}),
        "mastodon": (lambda: thread(c.curl_form, "/api/v2/media", [
            f"file=@{photo};type=image/jpeg", "description=me"]))
        if shutil.which("curl") else
        (lambda: thread(c.send, "POST", "/api/v2/media", files={
            "file": ("me.jpg", face, "image/jpeg")}, data={"description": "me"})),
        "discord": lambda: c.send_aiohttp("PUT", "/attachments/123/456/me.jpg", data=face,
                                          headers={"Content-Type": "image/jpeg"}),
        "other_path": lambda: thread(c.send, "POST", "/api/other/upload", files={
            "farr": ("me.jpg", face, "image/jpeg")}),
    }
    sent = asyncio.run(gather(jobs))
    for name, one in sent.items():
        assert one.status == 200, f"{name}: HTTP {one.status} {one.answer[:300]!r}"
    # The client sends segment 1 again after the image was protected (a retry).
    chunked["retry"] = _x_append(c, X_PATH, json.loads(chunked["init"].answer)["media_id_string"],
                                 1, _thirds(face)[1])
    return {**sent, **chunked, **{f"unordered_{k}": v for k, v in x_unordered.items()},
            **{f"v2_{k}": v for k, v in x_v2.items()}}


def _thirds(data: bytes) -> list[bytes]:
    size = -(-len(data) // 3)
    return [data[i:i + size] for i in range(0, len(data), size)]


def _x_chunked(c: Clients, face: bytes, out: dict[str, Sent], path: str = X_PATH,
               order: tuple[int, ...] = (0, 1, 2)) -> Sent:
    """INIT, the APPENDs of ``face`` in thirds in ``order``, FINALIZE, one after another as
    X's clients send them: each Sent in ``out`` (``init``, ``0``, ``1``..., ``finalize``)."""
    pieces = _thirds(face)
    out["init"] = init = c.send("POST", f"{path}?command=INIT&total_bytes={len(face)}"
                                "&media_type=image%2Fjpeg&media_category=tweet_image")
    assert init.status == 202, init.answer[:300]
    media_id = json.loads(init.answer)["media_id_string"]
    for index in order:
        out[str(index)] = _x_append(c, path, media_id, index, pieces[index])
    out["finalize"] = c.send("POST", f"{path}?command=FINALIZE&media_id={media_id}")
    return out[str(order[-1])]


def _x_append(c: Clients, path: str, media_id: str, index: int, piece: bytes) -> Sent:
    return c.send("POST", f"{path}?command=APPEND&media_id={media_id}&segment_index={index}",
                  files={"media": ("blob", piece, "application/octet-stream")})


def _x_v2_chunked(c: Clients, face: bytes, out: dict[str, Sent]) -> Sent:
    """The X API v2's dedicated endpoints: INIT as JSON, APPENDs of ``face`` in thirds as
    base64 in JSON, FINALIZE (docs.x.com/x-api/media)."""
    out["init"] = init = c.send("POST", X_V2_INIT, json={
        "media_category": "tweet_image", "media_type": "image/jpeg", "total_bytes": len(face)})
    assert init.status == 200, init.answer[:300]
    media_id = json.loads(init.answer)["data"]["id"]
    for index, piece in enumerate(_thirds(face)):
        out[str(index)] = c.send("POST", f"/2/media/upload/{media_id}/append", json={
            "media": base64.b64encode(piece).decode(), "segment_index": index})
    out["finalize"] = c.send("POST", f"/2/media/upload/{media_id}/finalize")
    return out["2"]


def _media(site: Site, sent: Sent) -> bytes:
    got = site.received(sent.test_id)
    _consistent_length(got)
    return multipart_parts(got.body, got.header("Content-Type"))["media"]


def _fb_form(face: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("fb_dtsg", "AQH-token")
    form.add_field("farr", face, filename="me.jpg", content_type="image/jpeg")
    return form


def _rupload_headers(face: bytes) -> dict[str, str]:
    return {"Content-Type": "application/octet-stream", "X-Entity-Length": str(len(face)),
            "X-Entity-Name": "fb_uploader_1712", "X-Entity-Type": "image/jpeg", "Offset": "0",
            "X-Instagram-Rupload-Params": json.dumps({"media_type": 1, "upload_id": "1712"})}


def _consistent_length(site_got: Received) -> None:
    assert int(site_got.header("Content-Length")) == site_got.length == len(site_got.body)


def test_facebook_multipart_from_aiohttp(uploads: dict[str, Sent], site: Site,
                                         face: bytes) -> None:
    got = site.received(uploads["facebook"].test_id)
    parts = multipart_parts(got.body, got.header("Content-Type"))
    assert_protected(face, parts["farr"])
    assert parts["fb_dtsg"] == b"AQH-token"
    _consistent_length(got)


def test_instagram_rupload_raw_body_from_requests(uploads: dict[str, Sent], site: Site,
                                                  face: bytes) -> None:
    got = site.received(uploads["instagram"].test_id)
    assert_protected(face, got.body)
    _consistent_length(got)
    assert got.header("X-Entity-Length") == str(len(got.body))
    assert got.header("Offset") == "0"
    assert got.header("X-Entity-Name") == "fb_uploader_1712"


def test_x_append_binary_media_keeps_every_other_byte(uploads: dict[str, Sent], site: Site,
                                                      face: bytes) -> None:
    sent = uploads["x_media"]
    got = site.received(sent.test_id)
    media = multipart_parts(got.body, got.header("Content-Type"))["media"]
    assert_protected(face, media, exact_size=True)
    assert got.body.replace(media, face) == sent.body
    _consistent_length(got)


def test_x_append_base64_media_data(uploads: dict[str, Sent], site: Site, face: bytes) -> None:
    sent = uploads["x_media_data"]
    got = site.received(sent.test_id)
    fields = parse_qs(got.body.decode(), strict_parsing=True)
    assert_protected(face, base64.b64decode(fields.pop("media_data")[0]), exact_size=True)
    assert fields == {"command": ["APPEND"], "media_id": ["1713"], "segment_index": ["0"]}
    # The image keeps its size (X declared total_bytes in INIT); the urlencoded body may not.
    _consistent_length(got)


def test_x_chunked_upload_is_reassembled_protected_in_pieces_of_the_same_length(
        uploads: dict[str, Sent], site: Site, face: bytes) -> None:
    # The proxy answered the first two APPENDs itself, and sent them on before the last.
    assert [uploads[str(i)].status for i in range(3)] == [204, 204, 200]
    assert uploads["finalize"].status == 200
    pieces = [_media(site, uploads[str(i)]) for i in range(3)]
    assert [len(p) for p in pieces] == [len(p) for p in _thirds(face)]
    assert_protected(face, b"".join(pieces), exact_size=True)
    for i in range(3):  # nothing but the media bytes changed
        got, sent = site.received(uploads[str(i)].test_id), uploads[str(i)]
        assert got.body.replace(pieces[i], _thirds(face)[i]) == sent.body
    # Segment 1 sent again after the protection: the site gets its protected bytes again.
    assert uploads["retry"].status == 200
    assert _media(site, uploads["retry"]) == pieces[1]


def test_x_appends_out_of_order_are_reassembled_by_segment_index(
        uploads: dict[str, Sent], site: Site, face: bytes) -> None:
    # Sent 2, 0, 1: the proxy held 2 and 0, and sent them on (0 first) before 1.
    assert [uploads[f"unordered_{i}"].status for i in (2, 0, 1)] == [204, 204, 200]
    pieces = [_media(site, uploads[f"unordered_{i}"]) for i in range(3)]
    assert [len(p) for p in pieces] == [len(p) for p in _thirds(face)]
    assert_protected(face, b"".join(pieces), exact_size=True)
    assert uploads["unordered_finalize"].status == 200


def test_x_api_v2_chunked_upload_with_base64_json_appends(
        uploads: dict[str, Sent], site: Site, face: bytes) -> None:
    sent = {i: uploads[f"v2_{i}"] for i in range(3)}
    assert [s.status for s in sent.values()] == [200, 200, 200]
    for i in (0, 1):  # answered by the proxy as the v2 API answers: JSON its clients parse
        assert "expires_at" in json.loads(sent[i].answer)["data"]
    pieces = []
    for i, one in sent.items():
        got = site.received(one.test_id)
        _consistent_length(got)
        doc = json.loads(got.body)
        assert doc["segment_index"] == i
        pieces.append(base64.b64decode(doc["media"]))
    assert [len(p) for p in pieces] == [len(p) for p in _thirds(face)]
    assert_protected(face, b"".join(pieces), exact_size=True)
    assert uploads["v2_finalize"].status == 200


@pytest.fixture(scope="module")
def x_left_alone(site: Site, guarded: Proxy, guarded_bundle: Path,
                 face: bytes) -> dict[str, dict[str, Sent]]:
    """Chunked uploads the proxy cannot reassemble (no protection is asked for)."""
    c = clients_for(site, guarded, guarded_bundle)
    cases: dict[str, dict[str, Sent]] = {name: {} for name in ("missing_middle", "over_limit")}
    _x_chunked(c, face, cases["missing_middle"], order=(0, 2))
    _x_chunked(c, face, cases["over_limit"], path="/1.1/media/upload.json")  # 1000-byte limit
    return cases


@pytest.mark.parametrize(("case", "statuses"), [
    ("missing_middle", {"0": 204, "2": 204}),  # held, then sent on as they were at FINALIZE
    ("over_limit", {"0": 200, "1": 200, "2": 200}),
])
def test_x_chunked_upload_the_proxy_cannot_reassemble_arrives_byte_identical(
        x_left_alone: dict[str, dict[str, Sent]], site: Site, case: str,
        statuses: dict[str, int]) -> None:
    sent = x_left_alone[case]
    assert {name: sent[name].status for name in statuses} == statuses
    for name in statuses:
        got = site.received(sent[name].test_id)
        assert got.body == sent[name].body
        _consistent_length(got)
    assert sent["finalize"].status == 200


def test_mastodon_multipart_file(uploads: dict[str, Sent], site: Site, face: bytes) -> None:
    got = site.received(uploads["mastodon"].test_id)
    parts = multipart_parts(got.body, got.header("Content-Type"))
    assert_protected(face, parts["file"])
    assert parts["description"] == b"me"
    _consistent_length(got)


def test_discord_raw_put_keeps_the_declared_size(uploads: dict[str, Sent], site: Site,
                                                 face: bytes) -> None:
    got = site.received(uploads["discord"].test_id)
    assert got.method == "PUT"
    assert_protected(face, got.body, exact_size=True)
    _consistent_length(got)


def test_a_path_outside_the_policy_arrives_byte_identical(uploads: dict[str, Sent],
                                                          site: Site) -> None:
    sent = uploads["other_path"]
    got = site.received(sent.test_id)
    assert got.body == sent.body
    _consistent_length(got)


def test_a_host_outside_the_policy_is_not_even_decrypted(site: Site, guarded: Proxy,
                                                         certs: Certs, face: bytes) -> None:
    # Trusting only the site's CA: had the proxy intercepted, its certificate would fail.
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    conn = http.client.HTTPSConnection("127.0.0.1", guarded.port, context=ctx, timeout=60)
    conn.set_tunnel("127.0.0.1", site.port)
    try:
        conn.request("POST", FB_PATH, body=face, headers={"X-Test-Id": "passthrough",
                                                          "Content-Type": "image/jpeg"})
        assert conn.getresponse().status == 200
        assert isinstance(conn.sock, ssl.SSLSocket)
        cert = conn.sock.getpeercert()
    finally:
        conn.close()
    assert cert and "('commonName', 'GRASP Guard demo site CA')" in str(cert["issuer"])
    assert site.received("passthrough").body == face


def test_a_large_upload_streams_with_bounded_proxy_memory(site: Site, guarded: Proxy,
                                                          guarded_bundle: Path) -> None:
    size, chunk = 80 * 2**20, os.urandom(2**20)
    reset = reset_peak_rss(guarded.mitmdump_pid)
    before = peak_rss(guarded.mitmdump_pid)
    ctx = ssl.create_default_context(cafile=str(guarded_bundle))
    conn = http.client.HTTPSConnection("127.0.0.1", guarded.port, context=ctx, timeout=120)
    conn.set_tunnel("localhost", site.port)
    try:
        conn.putrequest("PUT", "/attachments/big/video.bin")
        for name, value in (("Content-Length", str(size)), ("X-Test-Id", "large"),
                            ("Content-Type", "application/octet-stream")):
            conn.putheader(name, value)
        conn.endheaders()
        for _ in range(size // len(chunk)):
            conn.send(chunk)
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    grown = peak_rss(guarded.mitmdump_pid) - before
    got = site.received("large")
    assert got.length == size
    assert got.sha256 == hashlib.sha256(chunk * (size // len(chunk))).hexdigest()
    assert grown < size // 4, f"mitmdump's peak RSS grew by {grown / 2**20:.0f} MiB " \
                              f"(reset: {reset}) for an {size // 2**20} MiB upload"


# --- the service is down ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def down(site: Site, orphan: Proxy, orphan_bundle: Path, face: bytes) -> dict[str, Sent]:
    c = clients_for(site, orphan, orphan_bundle)
    return asyncio.run(gather({
        "pass": lambda: asyncio.to_thread(c.send, "POST", "/rupload_igphoto/fb_uploader_9",
                                          data=face, headers=_rupload_headers(face)),
        "block": lambda: c.send_aiohttp("PUT", "/attachments/9/9/me.jpg", data=face,
                                        headers={"Content-Type": "image/jpeg"}),
    }))


def test_service_down_a_pass_site_receives_the_original(down: dict[str, Sent], site: Site,
                                                        face: bytes) -> None:
    assert down["pass"].status == 200
    got = site.received(down["pass"].test_id)
    assert got.body == face
    assert got.header("X-Entity-Length") == str(len(face))
    _consistent_length(got)


def test_service_down_a_block_site_is_refused_with_the_reason(down: dict[str, Sent],
                                                              site: Site) -> None:
    refused = down["block"]
    assert refused.status in (503, 504)
    error = json.loads(refused.answer)["error"]
    assert error["kind"] == "upload_blocked" and error["site"] == "discord"
    assert error["reason"]
    assert not site.seen(refused.test_id)

