"""X's chunked uploads through the addon: held, reassembled, protected, sent on in pieces.

The hooks are called directly through taddons and tflow; a stand-in forwards the held
segments (what mitmproxy's client replay does in the proxy) and records what it sent.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from _proxy_helpers import FakeProtect, scramble
from mitmproxy import http
from mitmproxy.test import taddons, tflow
from PIL import Image

from proxy_addon.addon import METADATA_KEY, GraspGuard

POLICY = """\
version: 1
defaults: {preset: fast}
sites:
  - name: x
    hosts: [upload.x.com]
    paths: [/i/media/upload.json]
    formats: [multipart, form_base64]
    fields: [media, media_data]
    size_mode: exact
    chunked_upload: {protocol: x, max_total_bytes: 5000, max_segments: 4, hold_s: 30}
  - name: x-strict
    hosts: [upload.twitter.com]
    paths: [/i/media/upload.json]
    formats: [multipart, form_base64]
    on_failure: block
    chunked_upload: {protocol: x, max_total_bytes: 5000, max_segments: 4, hold_s: 30}
  - name: x-quick
    hosts: [quick.x.com]
    formats: [multipart]
    chunked_upload: {protocol: x, hold_s: 0.2}
  - name: x-quick-strict
    hosts: [quick-strict.x.com]
    formats: [multipart]
    on_failure: block
    chunked_upload: {protocol: x, hold_s: 0.2}
  - name: x-v2
    hosts: [api.x.com]
    paths: [/2/media/upload, /2/media/upload/initialize, "/2/media/upload/*/append",
            "/2/media/upload/*/finalize"]
    formats: [multipart, json_base64]
    fields: [media]
    chunked_upload: {protocol: x, max_total_bytes: 5000, max_segments: 4, hold_s: 30}
  - name: x-like
    hosts: [upload.photos.example, upload2.photos.example]
    paths: [/i/media/upload.json]
    formats: [multipart]
    size_mode: exact
    chunked_upload: {protocol: x, max_total_bytes: 5000, max_segments: 4, hold_s: 30}
"""
BOUNDARY = "----webkitXyZ"
CORS = ("Access-Control-Allow-Origin", "https://x.com")


@dataclass
class FakeForward:
    """Stands in for the client replay: answers ``status`` (or fails) and records the sends."""

    status: int = 204
    fail: bool = False
    sent: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)

    async def __call__(self, flow: http.HTTPFlow) -> None:
        assert not flow.live
        self.sent.append((flow.request.raw_content or b"", dict(flow.request.headers)))
        self.hosts.append(flow.request.host)
        if self.fail:
            flow.error = tflow.terr("connection refused")
        else:
            flow.response = http.Response.make(self.status, b"")


@dataclass
class Gate:
    """A protection that waits until ``open`` is set (to send requests meanwhile)."""

    inner: FakeProtect = field(default_factory=lambda: FakeProtect("scramble"))
    open: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, data: bytes, options: Any) -> Any:
        await self.open.wait()
        return await self.inner(data, options)


def form_append(media_id: str, index: int, piece: bytes) -> bytes:
    return (f"command=APPEND&media_id={media_id}&segment_index={index}"
            f"&media_data={quote(base64.b64encode(piece).decode(), safe='')}").encode()


@dataclass
class Client:
    """An X client: INIT, APPENDs of ``pieces`` of ``image``, FINALIZE, one at a time."""

    addon: GraspGuard
    host: str
    image: bytes
    pieces: int = 3
    media_id: str = "1880028106020515840"
    as_base64: bool = False
    extra_headers: dict[int, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://{self.host}/i/media/upload.json"

    def piece(self, index: int) -> bytes:
        size = -(-len(self.image) // self.pieces)
        return self.image[index * size:(index + 1) * size]

    async def init(self, status: int = 202) -> http.HTTPFlow:
        flow = await self._send(f"?command=INIT&total_bytes={len(self.image)}"
                                "&media_type=image%2Fjpeg&media_category=tweet_image", b"",
                                [("Content-Length", "0")])  # as HTTP/1.1 browsers send it
        if flow.response is None:
            flow.response = http.Response.make(status, json.dumps(
                {"media_id": int(self.media_id), "media_id_string": self.media_id}),
                {CORS[0]: CORS[1]})
            self.addon.response(flow)
        return flow

    async def append(self, index: int) -> http.HTTPFlow:
        piece = self.piece(index)
        if self.as_base64:
            body = form_append(self.media_id, index, piece)
            headers = [("Content-Type", "application/x-www-form-urlencoded")]
            query = ""
        else:
            body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"media\"; "
                    f"filename=\"blob\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                    ).encode() + piece + f"\r\n--{BOUNDARY}--\r\n".encode()
            headers = [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")]
            query = f"?command=APPEND&media_id={self.media_id}&segment_index={index}"
        headers += [("Content-Length", str(len(body))), *self.extra_headers.get(index, [])]
        return await self._send(query, body, headers)

    async def finalize(self) -> http.HTTPFlow:
        return await self._send(f"?command=FINALIZE&media_id={self.media_id}", b"", [])

    async def append_bytes(self, index: int, piece: bytes) -> http.HTTPFlow:
        """APPEND of ``piece`` as segment ``index`` (another piece than its own)."""
        original = self.piece
        self.piece = lambda i: piece  # type: ignore[method-assign]
        try:
            return await self.append(index)
        finally:
            self.piece = original  # type: ignore[method-assign]

    async def _send(self, query: str, body: bytes,
                    headers: list[tuple[str, str]]) -> http.HTTPFlow:
        request = http.Request.make("POST", self.url + query)
        request.headers = http.Headers([(k.encode(), v.encode()) for k, v in headers])
        request.raw_content = body
        flow = tflow.tflow(req=request)
        self.addon.requestheaders(flow)
        await self.addon.request(flow)
        return flow


notices: list[dict[str, Any]] = []


@pytest.fixture(autouse=True)
def _clear_notices() -> None:
    notices.clear()


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def guard(policy_file: Path, mode: str = "scramble", forward: FakeForward | None = None,
          **options: Any) -> tuple[GraspGuard, FakeProtect, FakeForward, Any]:
    protect, forward = FakeProtect(mode), forward or FakeForward()
    addon = GraspGuard(protect=protect, forward=forward,
                       notify=lambda f, r: notices.append(r))
    tctx = taddons.context(addon)
    tctx.configure(addon, grasp_policy=str(policy_file), **options)
    return addon, protect, forward, tctx


def record(flow: http.HTTPFlow) -> dict[str, Any]:
    return flow.metadata[METADATA_KEY]


def media_of(body: bytes) -> bytes:
    """The media part's content (a test-side parser)."""
    return body.split(b"\r\n\r\n", 1)[1].rsplit(f"\r\n--{BOUNDARY}--".encode(), 1)[0]


def held(flow: http.HTTPFlow) -> bool:
    return (flow.response is not None and flow.response.status_code == 204
            and flow.response.headers.get("X-Grasp-Guard") == "held")


# --- the whole image -----------------------------------------------------------------------

async def test_three_segments_go_out_protected_with_their_original_lengths(
        policy_file: Path, jpeg: bytes) -> None:
    addon, protect, forward, tctx = guard(policy_file)
    with tctx:
        x = Client(addon, "upload.x.com", jpeg)
        init = await x.init()
        flows = [await x.append(i) for i in range(3)]
        done = await x.finalize()
    assert record(init)["action"] == "declared" and record(init)["media_id"] == x.media_id
    assert held(flows[0]) and held(flows[1]) and flows[2].response is None
    assert flows[0].response is not None and flows[0].response.headers[CORS[0]] == CORS[1]
    assert [record(f)["action"] for f in flows] == ["held", "held", "protected"]
    # One protection of the whole image, at its exact size; the pieces cut where they were.
    assert [(data, options.size_mode) for data, options in protect.calls] == [(jpeg, "exact")]
    sent = [media_of(body) for body, _ in forward.sent] + [
        media_of(flows[2].request.raw_content or b"")]
    assert b"".join(sent) == scramble(jpeg)
    assert [len(s) for s in sent] == [len(x.piece(i)) for i in range(3)]
    assert [headers["Content-Length"] for _, headers in forward.sent] == [
        str(len(body)) for body, _ in forward.sent]
    last = record(flows[2])
    assert last["segments"] == [len(x.piece(i)) for i in range(3)]
    assert last["images"][0]["original_bytes"] == last["images"][0]["protected_bytes"]
    assert record(done)["action"] == "untouched" and done.response is None
    assert notices == []


@pytest.mark.parametrize("hosts", [("upload.x.com", "upload.photos.example"),
                                   ("upload.photos.example", "upload2.photos.example")])
async def test_two_hosts_uploads_with_the_same_media_id_never_mix(
        policy_file: Path, jpeg: bytes, hosts: tuple[str, str]) -> None:
    """Two sites, or two hosts of one site (self-hosted instances), with small sequential ids."""
    other = io.BytesIO()
    Image.new("RGB", (20, 14), (10, 140, 60)).save(other, "JPEG")
    addon, protect, forward, tctx = guard(policy_file)
    with tctx:
        x = Client(addon, hosts[0], jpeg, media_id="7")
        like = Client(addon, hosts[1], other.getvalue(), media_id="7")
        await x.init()
        await like.init()
        last = {}
        for index in range(3):
            for client in (x, like):
                last[client.host] = await client.append(index)
    assert [data for data, _ in protect.calls] == [jpeg, other.getvalue()]
    for client in (x, like):
        assert record(last[client.host])["action"] == "protected"
        sent = [media_of(body) for (body, _), host in zip(forward.sent, forward.hosts, strict=True)
                if host == client.host]
        assert b"".join([*sent, media_of(last[client.host].request.raw_content or b"")]) == \
            scramble(client.image)


async def test_a_segment_mitmproxy_streamed_is_left_alone_even_with_its_body_kept(
        policy_file: Path, jpeg: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    # mitmproxy 12's store_streamed_bodies keeps the body of a request it streamed to the site
    addon, protect, forward, tctx = guard(policy_file)
    headers_hook = addon.requestheaders

    def outgrew(flow: http.HTTPFlow) -> None:
        headers_hook(flow)
        flow.request.stream = True  # the body went on past stream_large_bodies

    with tctx:
        x = Client(addon, "upload.x.com", jpeg)
        await x.init()
        monkeypatch.setattr(addon, "requestheaders", outgrew)
        first = await x.append(0)
    assert first.response is None and record(first)["action"] == "streamed"
    assert protect.calls == [] and forward.sent == []


async def test_base64_segments_get_their_digests_recomputed(policy_file: Path,
                                                            jpeg: bytes) -> None:
    addon, _, forward, tctx = guard(policy_file)
    x = Client(addon, "upload.x.com", jpeg, as_base64=True)
    for index in range(3):
        body = form_append(x.media_id, index, x.piece(index))
        x.extra_headers[index] = [
            ("Content-Digest", f"sha-256=:{_b64(hashlib.sha256(body).digest())}:"),
            ("Repr-Digest", f"sha-512=:{_b64(hashlib.sha512(body).digest())}:")]
    with tctx:
        await x.init()
        flows = [await x.append(i) for i in range(3)]
    assert record(flows[2])["action"] == "protected"
    bodies = [(body, headers) for body, headers in forward.sent] + [
        (flows[2].request.raw_content or b"", dict(flows[2].request.headers))]
    pieces = []
    for body, headers in bodies:
        assert headers["Content-Digest"] == f"sha-256=:{_b64(hashlib.sha256(body).digest())}:"
        assert headers["Repr-Digest"] == f"sha-512=:{_b64(hashlib.sha512(body).digest())}:"
        assert headers["Content-Length"] == str(len(body))
        pieces.append(base64.b64decode(unquote(body.decode().split("media_data=")[1])))
    assert b"".join(pieces) == scramble(jpeg)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def test_a_retry_that_cannot_carry_its_protected_bytes_is_refused(
        policy_file: Path, jpeg: bytes) -> None:
    """After protection, a segment sent again that the proxy cannot rewrite must not reach
    the site with its original bytes (they would land among protected ones), even where
    ``on_failure`` says pass; plain retries still carry their protected bytes."""
    addon, _, forward, tctx = guard(policy_file)
    x = Client(addon, "upload.x.com", jpeg)
    with tctx:
        await x.init()
        flows = [await x.append(i) for i in range(3)]
        x.extra_headers[1] = [("Content-Digest", "md5=:AAAAAAAAAAAAAAAAAAAAAA==:")]
        refused = await x.append(1)
        x.extra_headers.clear()
        again = await x.append(2)
    assert record(flows[2])["action"] == "protected"
    assert record(refused)["action"] == "blocked" and refused.response is not None
    assert "cannot carry its protected bytes" in record(refused)["reason"]
    assert record(again)["action"] == "protected"
    assert media_of(again.request.raw_content or b"") == media_of(flows[2].request.raw_content
                                                                  or b"")
    assert len(forward.sent) == 2  # the held segments 0 and 1, protected, and nothing more


async def test_a_signed_sites_chunked_upload_is_left_alone(tmp_path: Path, jpeg: bytes) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace("    chunked_upload: {protocol: x, max_total_bytes: 5000, "
                                   "max_segments: 4, hold_s: 30}\n  - name: x-strict",
                                   "    signed: true\n    chunked_upload: {protocol: x, "
                                   "max_total_bytes: 5000, max_segments: 4, hold_s: 30}\n"
                                   "  - name: x-strict", 1), encoding="utf-8")
    addon, protect, forward, tctx = guard(path)
    x = Client(addon, "upload.x.com", jpeg)
    with tctx:
        await x.init()
        flows = [await x.append(i) for i in range(3)]
    assert protect.calls == [] and forward.sent == []
    assert all(f.response is None for f in flows)
    assert [media_of(f.request.raw_content or b"") for f in flows] == [x.piece(i) for i in range(3)]


async def test_an_unknown_digest_algorithm_leaves_the_upload_untouched(policy_file: Path,
                                                                       jpeg: bytes) -> None:
    addon, protect, forward, tctx = guard(policy_file)
    x = Client(addon, "upload.x.com", jpeg,
               extra_headers={1: [("Content-Digest", "md5=:AAAAAAAAAAAAAAAAAAAAAA==:")]})
    with tctx:
        await x.init()
        flows = [await x.append(i) for i in range(3)]
    assert held(flows[0])
    assert [media_of(body) for body, _ in forward.sent] == [x.piece(0)]  # sent untouched
    assert record(flows[1])["action"] == "untouched"
    assert "unsupported algorithm md5" in record(flows[1])["reason"]
    assert media_of(flows[1].request.raw_content or b"") == x.piece(1)
    assert record(flows[2])["action"] == "untouched"
    assert media_of(flows[2].request.raw_content or b"") == x.piece(2)
    assert protect.calls == [] and notices == []


async def test_an_unknown_digest_algorithm_on_a_block_site_refuses_the_upload(
        policy_file: Path, jpeg: bytes) -> None:
    addon, protect, forward, tctx = guard(policy_file)
    x = Client(addon, "upload.twitter.com", jpeg,
               extra_headers={1: [("Content-Digest", "md5=:AAAAAAAAAAAAAAAAAAAAAA==:")]})
    with tctx:
        await x.init()
        flows = [await x.append(i) for i in range(3)]
    assert held(flows[0]) and forward.sent == []  # the held first piece is dropped
    assert [record(f)["action"] for f in flows[1:]] == ["blocked", "blocked"]
    assert flows[1].response is not None and flows[1].response.status_code == 403
    assert "unsupported algorithm md5" in record(flows[1])["reason"]
    assert protect.calls == []


@pytest.mark.parametrize("host", ["upload.x.com", "upload.twitter.com"])
async def test_no_face_sends_every_segment_untouched(policy_file: Path, jpeg: bytes,
                                                     host: str) -> None:
    addon, _, forward, tctx = guard(policy_file, "same")
    with tctx:
        x = Client(addon, host, jpeg)
        await x.init()
        flows = [await x.append(i) for i in range(3)]
        again = await x.append(1)  # a retry: nothing to protect, on a block site too
    assert [media_of(body) for body, _ in forward.sent] == [x.piece(0), x.piece(1)]
    assert media_of(flows[2].request.raw_content or b"") == x.piece(2)
    assert record(flows[2])["action"] == "untouched" and "no face" in record(flows[2])["reason"]
    assert again.response is None and record(again)["action"] == "untouched"


@pytest.mark.parametrize(("host", "action"), [("upload.x.com", "untouched"),
                                              ("upload.twitter.com", "blocked")])
async def test_a_retry_with_other_bytes_after_no_face_follows_on_failure(
        policy_file: Path, jpeg: bytes, host: str, action: str) -> None:
    """The image checked had no face; other bytes for one of its segments make an image
    never checked, which a block site must not receive unprotected."""
    addon, _, _, tctx = guard(policy_file, "same")
    with tctx:
        x = Client(addon, host, jpeg)
        await x.init()
        [await x.append(i) for i in range(3)]
        other = await x.append_bytes(1, bytes(len(x.piece(1))))
        beyond = await x.append_bytes(3, x.piece(1))
        same = await x.append(1)
    for flow in (other, beyond):
        assert record(flow)["action"] == action
        assert (flow.response is None) is (action == "untouched")
    assert "segment 1 arrived again with bytes other than those" in record(other)["reason"]
    assert record(same)["action"] == "untouched" and same.response is None


async def test_a_retry_that_cannot_be_read_after_no_face_leaves_the_upload_standing(
        policy_file: Path, jpeg: bytes) -> None:
    """On a block site the retry itself is refused (its bytes are never checked); the
    upload, delivered untouched, stands: its identical retry and FINALIZE go as they are."""
    addon, _, _, tctx = guard(policy_file, "same")
    with tctx:
        x = Client(addon, "upload.twitter.com", jpeg)
        await x.init()
        [await x.append(i) for i in range(3)]
        x.extra_headers[1] = [("Content-Digest", "md5=:AAAAAAAAAAAAAAAAAAAAAA==:")]
        unreadable = await x.append(1)
        x.extra_headers.clear()
        same = await x.append(1)
        done = await x.finalize()
    assert record(unreadable)["action"] == "blocked"
    assert "unsupported algorithm md5" in record(unreadable)["reason"]
    assert [record(same)["action"], record(done)["action"]] == ["untouched", "untouched"]
    assert same.response is None and done.response is None


async def test_an_append_without_init_takes_the_single_upload_path(policy_file: Path,
                                                                   jpeg: bytes) -> None:
    addon, _, forward, tctx = guard(policy_file)
    with tctx:
        flow = await Client(addon, "upload.x.com", jpeg, pieces=1).append(0)
    assert media_of(flow.request.raw_content or b"") == scramble(jpeg)
    assert record(flow)["images"][0]["location"] == "multipart part 'media'"
    assert forward.sent == []


async def test_an_init_the_site_refused_holds_nothing(policy_file: Path, jpeg: bytes) -> None:
    addon, _, forward, tctx = guard(policy_file)
    with tctx:
        x = Client(addon, "upload.x.com", jpeg)
        init = await x.init(status=400)
        first = await x.append(0)
    assert "no media_id" in record(init)["reason"]
    assert first.response is None and media_of(first.request.raw_content or b"") == x.piece(0)
    assert "incomplete" in record(first)["reason"] and forward.sent == []


# --- incomplete, out of order, over a limit, too slow: pass or block ------------------------

@pytest.mark.parametrize(("host", "action"), [("upload.x.com", "passed"),
                                              ("upload.twitter.com", "blocked")])
async def test_a_missing_middle_segment(policy_file: Path, jpeg: bytes, host: str,
                                        action: str) -> None:
    addon, protect, forward, tctx = guard(policy_file)
    with tctx:
        x = Client(addon, host, jpeg)
        await x.init()
        first, third = await x.append(0), await x.append(2)
        done = await x.finalize()
        again = await x.finalize()  # a FINALIZE sent again hears the same
        late = await x.append(0)  # and so does an APPEND sent again
    assert held(first) and held(third)  # segment 2 may be the first of parallel APPENDs
    assert record(done)["action"] == action
    assert "closed after" in record(done)["reason"] and "(incomplete)" in record(done)["reason"]
    assert protect.calls == []
    assert record(again)["action"] == record(late)["action"] == action
    if action == "passed":  # segments 0 and 2 went on untouched, in order, then FINALIZE
        assert [media_of(body) for body, _ in forward.sent] == [x.piece(0), x.piece(2)]
        assert done.response is None and late.response is None
    else:  # nothing reached the site; the client hears why, on every later request
        assert forward.sent == []
        assert done.response is not None and done.response.status_code == 502
        assert json.loads(done.response.content or b"")["error"]["site"] == "x-strict"
        assert again.response is not None and late.response is not None
    assert notices[0] == record(done)


@pytest.mark.parametrize(("host", "action"), [("upload.x.com", "passed"),
                                              ("upload.twitter.com", "blocked")])
async def test_finalize_before_the_last_segment(policy_file: Path, jpeg: bytes, host: str,
                                                action: str) -> None:
    addon, _, forward, tctx = guard(policy_file)
    with tctx:
        x = Client(addon, host, jpeg)
        await x.init()
        flows = [await x.append(i) for i in range(2)]
        done = await x.finalize()
    assert all(held(f) for f in flows)
    assert record(done)["action"] == action and "incomplete" in record(done)["reason"]
    if action == "passed":
        assert [media_of(body) for body, _ in forward.sent] == [x.piece(0), x.piece(1)]
        assert done.response is None
    else:
        assert forward.sent == [] and done.response is not None


@pytest.mark.parametrize(("host", "action"), [("upload.x.com", "untouched"),
                                              ("upload.twitter.com", "blocked")])
async def test_an_image_over_the_limit_follows_on_failure(
        policy_file: Path, host: str, action: str) -> None:
    big = b"\xff\xd8\xff\xe0" + bytes(6000)  # total_bytes 6004 > max_total_bytes 5000
    addon, protect, forward, tctx = guard(policy_file)
    with tctx:
        x = Client(addon, host, big)
        init = await x.init()
        flows = [await x.append(i) for i in range(3)]
    assert "outside 1..5000" in record(init)["reason"]
    for index, flow in enumerate(flows):
        assert record(flow)["action"] == action
        if action == "untouched":
            assert flow.response is None
            assert media_of(flow.request.raw_content or b"") == x.piece(index)
        else:  # the site never gets a piece of the unprotected image
            assert flow.response is not None and flow.response.status_code == 403
    assert protect.calls == [] and forward.sent == []


async def test_too_many_segments(policy_file: Path, jpeg: bytes) -> None:
    addon, _, forward, tctx = guard(policy_file)
    with tctx:
        x = Client(addon, "upload.x.com", jpeg, pieces=6)
        await x.init()
        flows = [await x.append(i) for i in range(5)]
    assert all(held(f) for f in flows[:4])
    assert "more than 4 segments" in record(flows[4])["reason"]
    assert [media_of(body) for body, _ in forward.sent] == [x.piece(i) for i in range(4)]


@pytest.mark.parametrize(("host", "forwarded"), [("quick.x.com", 1),
                                                 ("quick-strict.x.com", 0)])
async def test_held_too_long(policy_file: Path, jpeg: bytes, host: str,
                             forwarded: int) -> None:
    addon, _, forward, tctx = guard(policy_file)
    with tctx:
        x = Client(addon, host, jpeg)
        await x.init()
        first = await x.append(0)
        await asyncio.sleep(0.5)
        second = await x.append(1)
    assert held(first)
    assert [media_of(body) for body, _ in forward.sent] == [x.piece(0)] * forwarded
    assert "not complete within 0.2 s" in record(second)["reason"]
    assert (second.response is None) is (forwarded == 1)


async def test_an_upload_declared_again_under_its_id_still_expires(policy_file: Path,
                                                                   jpeg: bytes) -> None:
    """The id of a protected upload declared again: the new upload's held segment goes on
    untouched when its own hold time runs out, whatever the first one's timer did."""
    addon, _, forward, tctx = guard(policy_file)
    with tctx:
        x = Client(addon, "quick.x.com", jpeg)
        await x.init()
        [await x.append(i) for i in range(3)]  # protected: its pieces kept for hold_s
        await asyncio.sleep(0.1)
        await x.init()
        first = await x.append(0)
        await asyncio.sleep(0.6)
    assert held(first)
    assert media_of(forward.sent[-1][0]) == x.piece(0), "the held segment never went on"


# --- the protection or the site fails -------------------------------------------------------

@pytest.mark.parametrize(("host", "status"), [("upload.x.com", None),
                                              ("upload.twitter.com", 503)])
async def test_the_service_down_at_the_last_segment(policy_file: Path, jpeg: bytes,
                                                    host: str, status: int | None) -> None:
    addon, _, forward, tctx = guard(policy_file, "down")
    with tctx:
        x = Client(addon, host, jpeg)
        await x.init()
        flows = [await x.append(i) for i in range(3)]
        done = await x.finalize()
    last = flows[2]
    assert "ServiceUnavailable" in record(last)["reason"]
    assert "ServiceUnavailable" in record(done)["reason"]
    if status is None:
        assert [media_of(body) for body, _ in forward.sent] == [x.piece(0), x.piece(1)]
        assert media_of(last.request.raw_content or b"") == x.piece(2)
        assert record(last)["action"] == "passed" and last.response is None
        assert done.response is None
    else:  # the segments held never reach the site, nor does FINALIZE
        assert forward.sent == []
        assert last.response is not None and last.response.status_code == status
        assert done.response is not None and record(done)["action"] == "blocked"


@pytest.mark.parametrize(("mode", "forward"), [("scramble", FakeForward(status=400)),
                                              ("scramble", FakeForward(fail=True)),
                                              ("same", FakeForward(status=400))])
async def test_a_held_segment_the_site_refuses_is_told_on_the_last(
        policy_file: Path, jpeg: bytes, mode: str, forward: FakeForward) -> None:
    addon, _, forward, tctx = guard(policy_file, mode, forward=forward)
    with tctx:
        x = Client(addon, "upload.x.com", jpeg)
        await x.init()
        flows = [await x.append(i) for i in range(3)]
    last = flows[2]
    assert len(forward.sent) == 1  # the first refusal stops the sending
    assert last.response is not None and last.response.status_code == 502
    error = json.loads(last.response.content or b"")["error"]
    assert error["kind"] == "upload_undelivered" and "held segment 0" in error["reason"]
    assert record(last)["action"] == "failed" and notices == [record(last)]


# --- parallel APPENDs, and segments sent again --------------------------------------------

@pytest.mark.parametrize("order", [(2, 0, 1), (1, 2, 0)])
async def test_parallel_appends_are_reassembled_by_segment_index(
        policy_file: Path, jpeg: bytes, order: tuple[int, ...]) -> None:
    addon, protect, forward, tctx = guard(policy_file)
    with tctx:
        x = Client(addon, "upload.x.com", jpeg)
        await x.init()
        flows = dict(zip(order, await asyncio.gather(*(x.append(i) for i in order)),
                         strict=True))
        done = await x.finalize()
    last = flows[order[-1]]
    assert [held(flows[i]) for i in order] == [True, True, False]
    assert record(last)["action"] == "protected" and protect.calls == [(jpeg, protect.calls[0][1])]
    # The held ones reach the site in index order, before the one that completed the image.
    earlier = sorted(order[:-1])
    assert [media_of(body) for body, _ in forward.sent] == [
        scramble(jpeg)[i * len(x.piece(0)):][:len(x.piece(i))] for i in earlier]
    assert media_of(last.request.raw_content or b"") == \
        scramble(jpeg)[order[-1] * len(x.piece(0)):][:len(x.piece(order[-1]))]
    assert record(done)["action"] == "untouched" and done.response is None


async def test_a_held_segment_sent_again_is_answered_again(policy_file: Path,
                                                           jpeg: bytes) -> None:
    addon, _, forward, tctx = guard(policy_file)
    with tctx:
        x = Client(addon, "upload.x.com", jpeg)
        await x.init()
        first, again = await x.append(0), await x.append(0)
        rest = [await x.append(i) for i in (1, 2)]
    assert held(first) and held(again) and "held already" in record(again)["reason"]
    assert record(rest[-1])["action"] == "protected"
    assert [media_of(body) for body, _ in forward.sent] == [
        scramble(jpeg)[:len(x.piece(0))], scramble(jpeg)[len(x.piece(0)):][:len(x.piece(1))]]


@pytest.mark.parametrize("host", ["upload.x.com", "upload.twitter.com"])
@pytest.mark.parametrize("after_finalize", [False, True])
async def test_a_segment_sent_again_after_protection_carries_its_protected_bytes(
        policy_file: Path, jpeg: bytes, host: str, after_finalize: bool) -> None:
    addon, protect, _, tctx = guard(policy_file)
    with tctx:
        x = Client(addon, host, jpeg)
        await x.init()
        flows = [await x.append(i) for i in range(3)]
        done = await x.finalize() if after_finalize else None
        retries = [await x.append(i) for i in (1, 2)]
        again = await x.finalize()
    assert record(flows[2])["action"] == "protected" and len(protect.calls) == 1
    size = len(x.piece(0))
    for index, retry in zip((1, 2), retries, strict=True):
        assert retry.response is None and record(retry)["action"] == "protected"
        assert "sent again after its image was protected" in record(retry)["reason"]
        body = retry.request.raw_content or b""
        assert media_of(body) == scramble(jpeg)[index * size:][:len(x.piece(index))]
        assert retry.request.headers["Content-Length"] == str(len(body))
    assert (done is None or done.response is None) and again.response is None
    assert record(again)["action"] == "untouched" and notices == []


@pytest.mark.parametrize(("host", "action"), [("upload.x.com", "passed"),
                                              ("upload.twitter.com", "blocked")])
async def test_a_segment_sent_again_with_other_bytes_follows_on_failure(
        policy_file: Path, jpeg: bytes, host: str, action: str) -> None:
    addon, _, _, tctx = guard(policy_file)
    with tctx:
        x = Client(addon, host, jpeg)
        await x.init()
        [await x.append(i) for i in range(3)]
        other = await x.append_bytes(1, bytes(len(x.piece(1))))
        same = await x.append(1)
    assert record(other)["action"] == action
    assert "segment 1 arrived again with bytes other than those" in record(other)["reason"]
    assert (other.response is None) is (action == "passed")
    assert notices == [record(other)]
    assert record(same)["action"] == "protected"  # the upload itself stands


async def test_a_segment_sent_again_once_its_protected_bytes_are_let_go(
        policy_file: Path, jpeg: bytes) -> None:
    addon, _, _, tctx = guard(policy_file)
    with tctx:
        x = Client(addon, "quick-strict.x.com", jpeg)
        await x.init()
        [await x.append(i) for i in range(3)]
        await asyncio.sleep(0.4)  # hold_s 0.2: the timer lets go of the protected pieces
        late = await x.append(0)
    assert addon._chunked.reassembly.held_bytes == 0
    assert record(late)["action"] == "blocked" and "let go" in record(late)["reason"]
    assert late.response is not None and late.response.status_code == 502


async def test_requests_during_the_protection_wait_for_it(policy_file: Path,
                                                          jpeg: bytes) -> None:
    gate, forward = Gate(), FakeForward()
    addon = GraspGuard(protect=gate, forward=forward)
    tctx = taddons.context(addon)
    tctx.configure(addon, grasp_policy=str(policy_file))
    with tctx:
        x = Client(addon, "upload.x.com", jpeg)
        await x.init()
        [await x.append(i) for i in range(2)]
        last = asyncio.create_task(x.append(2))
        await asyncio.sleep(0.05)  # the last APPEND waits for the protection
        retry = asyncio.create_task(x.append(2))  # the client gave up waiting, sends it again
        done = asyncio.create_task(x.finalize())
        await asyncio.sleep(0.05)
        assert not (retry.done() or done.done())
        gate.open.set()
        flows = await asyncio.gather(last, retry, done)
    assert [record(f)["action"] for f in flows] == ["protected", "protected", "untouched"]
    assert flows[0].request.raw_content == flows[1].request.raw_content
    assert media_of(flows[1].request.raw_content or b"") == scramble(jpeg)[-len(x.piece(2)):]
    assert len(gate.inner.calls) == 1 and len(forward.sent) == 2


# --- X API v2 -------------------------------------------------------------------------------

@dataclass
class V2Client:
    """An X API v2 client: ``dedicated`` endpoints (``/initialize``, ``/{id}/append``,
    ``/{id}/finalize``), APPENDs as multipart or as base64 in JSON; or the ``command``
    style on ``/2/media/upload``. The shapes of docs.x.com's quickstart and references."""

    addon: GraspGuard
    image: bytes
    style: str = "multipart"
    media_id: str = "1880028106020515840"
    base: str = "https://api.x.com/2/media/upload"

    def piece(self, index: int) -> bytes:
        size = -(-len(self.image) // 3)
        return self.image[index * size:(index + 1) * size]

    async def init(self) -> http.HTTPFlow:
        if self.style == "command":
            flow = await self._send("", *multipart_form({
                "command": b"INIT", "media_type": b"image/jpeg",
                "total_bytes": str(len(self.image)).encode(), "media_category": b"tweet_image"}))
        else:
            flow = await self._send("/initialize", json.dumps({
                "media_category": "tweet_image", "media_type": "image/jpeg",
                "total_bytes": len(self.image)}).encode(), "application/json")
        flow.response = http.Response.make(200, json.dumps({"data": {
            "id": self.media_id, "media_key": f"3_{self.media_id}",
            "expires_after_secs": 86400}}), {"Content-Type": "application/json"})
        self.addon.response(flow)
        return flow

    async def append(self, index: int) -> http.HTTPFlow:
        piece = self.piece(index)
        if self.style == "json":
            return await self._send(f"/{self.media_id}/append", json.dumps({
                "media": base64.b64encode(piece).decode(), "segment_index": index}).encode(),
                "application/json")
        fields = {"segment_index": str(index).encode(), "media": piece}
        if self.style == "command":
            fields = {"command": b"APPEND", "media_id": self.media_id.encode(), **fields}
        path = "" if self.style == "command" else f"/{self.media_id}/append"
        return await self._send(path, *multipart_form(fields))

    async def finalize(self) -> http.HTTPFlow:
        if self.style == "command":
            return await self._send("", *multipart_form({
                "command": b"FINALIZE", "media_id": self.media_id.encode()}))
        return await self._send(f"/{self.media_id}/finalize", b"", "")

    def media(self, body: bytes) -> bytes:
        """The piece of the image in an APPEND body (a test-side parser)."""
        if self.style == "json":
            return base64.b64decode(json.loads(body)["media"])
        return body.split(b'name="media"; filename="blob"\r\n'
                          b"Content-Type: application/octet-stream\r\n\r\n", 1)[1] \
            .rsplit(f"\r\n--{BOUNDARY}--".encode(), 1)[0]

    async def _send(self, path: str, body: bytes, content_type: str) -> http.HTTPFlow:
        request = http.Request.make("POST", self.base + path)
        headers = [("Content-Length", str(len(body)))]
        if content_type:
            headers.insert(0, ("Content-Type", content_type))
        request.headers = http.Headers([(k.encode(), v.encode()) for k, v in headers])
        request.raw_content = body
        flow = tflow.tflow(req=request)
        self.addon.requestheaders(flow)
        await self.addon.request(flow)
        return flow


def multipart_form(fields: dict[str, bytes]) -> tuple[bytes, str]:
    body = b""
    for name, value in fields.items():
        extra = '; filename="blob"\r\nContent-Type: application/octet-stream' \
            if name == "media" else ""
        body += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{extra}"
                 "\r\n\r\n").encode() + value + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


@pytest.mark.parametrize("style", ["multipart", "json", "command"])
async def test_x_api_v2_chunked_upload_goes_out_protected(policy_file: Path, jpeg: bytes,
                                                          style: str) -> None:
    addon, protect, forward, tctx = guard(policy_file)
    with tctx:
        x = V2Client(addon, jpeg, style)
        init = await x.init()
        flows = [await x.append(i) for i in range(3)]
        done = await x.finalize()
    assert record(init)["action"] == "declared" and record(init)["media_id"] == x.media_id
    for flow in flows[:2]:  # answered the way the v2 API answers: 200, JSON its clients parse
        assert flow.response is not None and flow.response.status_code == 200
        assert json.loads(flow.response.content or b"")["data"]["expires_at"] > 0
        assert record(flow)["action"] == "held"
    assert record(flows[2])["action"] == "protected" and flows[2].response is None
    assert [options.size_mode for _, options in protect.calls] == ["exact"]
    sent = [x.media(body) for body, _ in forward.sent] + [
        x.media(flows[2].request.raw_content or b"")]
    assert b"".join(sent) == scramble(jpeg)
    assert [len(p) for p in sent] == [len(x.piece(i)) for i in range(3)]
    assert record(done)["action"] == "untouched" and done.response is None
