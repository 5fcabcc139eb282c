"""The GraspGuard addon's hooks, called directly through taddons and tflow."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from _proxy_helpers import FakeProtect, flip, grow
from aiohttp import web
from aiohttp.test_utils import TestServer
from mitmproxy import exceptions, http, websocket
from mitmproxy.test import taddons, tflow
from wsproto.frame_protocol import Opcode

from proxy_addon.addon import METADATA_KEY, GraspGuard

UPLOAD = "https://upload.example.com/upload"
STRICT = "https://strict.example.com/put"
BOUNDARY = "XyZ"


def make_flow(url: str, body: bytes, headers: list[tuple[str, str]],
              method: str = "POST") -> http.HTTPFlow:
    request = http.Request.make(method, url)
    request.headers = http.Headers([(k.encode(), v.encode()) for k, v in headers])
    request.raw_content = body  # exactly these headers: no Content-Length fix-up
    return tflow.tflow(req=request)


def raw_upload(jpeg: bytes, url: str = UPLOAD) -> http.HTTPFlow:
    return make_flow(url, jpeg, [("Content-Type", "image/jpeg"), ("X-Entity-Length", str(len(jpeg))),
                                 ("Content-Length", str(len(jpeg))), ("X-Other", "kept")])


def multipart(jpeg: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nhi\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"me.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + jpeg + (
            f"\r\n--{BOUNDARY}--\r\n").encode()


async def run(addon: GraspGuard, flow: http.HTTPFlow) -> dict[str, Any]:
    addon.requestheaders(flow)
    await addon.request(flow)
    return flow.metadata[METADATA_KEY]


def guard(policy_file: Path, mode: str = "flip", **options: Any) -> tuple[GraspGuard, Any]:
    addon = GraspGuard(protect=FakeProtect(mode), notify=lambda f, r: notices.append(r))
    tctx = taddons.context(addon)
    tctx.configure(addon, grasp_policy=str(policy_file), **options)
    return addon, tctx


notices: list[dict[str, Any]] = []
# Every test is async: taddons.context() outside a running loop opens one it never closes.


@pytest.fixture(autouse=True)
def _clear_notices() -> None:
    notices.clear()


# --- options ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("grasp_policy", "/nonexistent/policy.yaml", "cannot read policy"),
        ("grasp_service", ["ftp://host"], "http(s)://host"),
        ("grasp_service", [], "at least one service URL"),
        ("grasp_service", ["http://127.0.0.1:1/?x=1"], "no query"),
        ("grasp_timeout", "0", "positive"),
        ("grasp_timeout", "soon", "number of seconds"),
        ("grasp_timeout", "inf", "positive"),
        ("grasp_max_buffer", 10, "at least 1024"),
        ("grasp_token", "two words", "without spaces"),
    ],
)
async def test_invalid_options_raise_options_error(option: str, value: Any, message: str) -> None:
    addon = GraspGuard()
    with taddons.context(addon) as tctx, pytest.raises(exceptions.OptionsError) as info:
        tctx.configure(addon, **{option: value})
    assert option in str(info.value) and message in str(info.value)


async def test_invalid_policy_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("sites:\n  - name: a\n    hosts: [x.com]\n    on_failure: maybe\n")
    addon = GraspGuard()
    with taddons.context(addon) as tctx, pytest.raises(exceptions.OptionsError,
                                                       match="on_failure"):
        tctx.configure(addon, grasp_policy=str(path))


async def test_valid_options_are_parsed(policy_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRASP_GUARD_TOKEN", "from-env")
    addon = GraspGuard()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, grasp_policy=str(policy_file), grasp_timeout="2.5",
                       grasp_service=["http://a:1", "https://b"], grasp_max_buffer=4096)
        tctx.configure(addon, grasp_token="")
    s = addon.settings
    assert s.policy is not None and s.policy.get("pics") is not None
    assert (s.timeout_s, s.endpoints, s.max_buffer, s.token) == (
        2.5, ("http://a:1", "https://b"), 4096, "from-env")


# --- requestheaders: stream or buffer -------------------------------------------------------

async def test_without_a_policy_the_addon_does_nothing(jpeg: bytes) -> None:
    addon = GraspGuard(protect=FakeProtect())
    with taddons.context(addon):
        flow = raw_upload(jpeg)
        addon.requestheaders(flow)
    assert not flow.request.stream and METADATA_KEY not in flow.metadata


@pytest.mark.parametrize(
    ("url", "method", "headers", "action"),
    [
        (UPLOAD, "POST", [("Content-Type", "image/jpeg"), ("Content-Length", "900")],
         "buffered"),
        (UPLOAD, "GET", [], "ignored"),
        ("https://elsewhere.example.com/upload", "POST", [("Content-Length", "900")],
         "ignored"),
        ("https://elsewhere.example.com/upload", "POST", [("Transfer-Encoding", "chunked")],
         "streamed"),
        (UPLOAD, "POST", [("Content-Type", "video/webm"), ("Content-Length", "90000")],
         "streamed"),
        (UPLOAD, "POST", [("Content-Length", "90000")], "streamed"),  # over grasp_max_buffer
    ],
)
async def test_requestheaders_streams_only_large_or_unbounded_non_candidates(
        policy_file: Path, url: str, method: str, headers: list[tuple[str, str]],
        action: str) -> None:
    addon, tctx = guard(policy_file, grasp_max_buffer=4096)
    with tctx:
        flow = make_flow(url, b"", headers, method)
        addon.requestheaders(flow)
    assert bool(flow.request.stream) is (action == "streamed")
    assert flow.metadata[METADATA_KEY]["action"] == action


async def test_a_body_mitmproxy_already_streams_is_left_alone(policy_file: Path, jpeg: bytes) -> None:
    addon, tctx = guard(policy_file)
    with tctx:
        flow = raw_upload(jpeg)
        flow.request.stream = True
        addon.requestheaders(flow)
    assert flow.metadata[METADATA_KEY]["action"] == "streamed"


async def test_a_body_that_outgrew_stream_large_bodies_is_not_touched(policy_file: Path,
                                                                      jpeg: bytes) -> None:
    addon, tctx = guard(policy_file)
    with tctx:
        flow = raw_upload(jpeg)
        addon.requestheaders(flow)
        flow.request.stream = True  # mitmproxy switched to streaming mid-body
        flow.request.data.content = None
        await addon.request(flow)
    assert flow.metadata[METADATA_KEY]["action"] == "streamed"
    assert addon._protect.calls == []  # type: ignore[union-attr]


# --- request: the rewrite -----------------------------------------------------------------

async def test_same_length_rewrite_applies_body_and_hook_headers(policy_file: Path,
                                                                 jpeg: bytes) -> None:
    addon, tctx = guard(policy_file, "flip")
    with tctx:
        flow = raw_upload(jpeg)
        before = list(flow.request.headers.fields)
        record = await run(addon, flow)
    assert flow.request.raw_content == flip(jpeg)
    assert list(flow.request.headers.fields) == before
    assert record["action"] == "protected" and record["site"] == "pics"
    assert record["images"][0]["location"] == "body"
    assert record["images"][0]["original_bytes"] == len(jpeg)
    assert flow.response is None and notices == []


@pytest.mark.parametrize("status", [307, 308])
async def test_a_redirected_upload_is_protected_where_the_client_repeats_it(
        policy_file: Path, jpeg: bytes, status: int) -> None:
    # S3's 307 to its regional host: the client repeats the upload from its own copy, the
    # original photo, at an address the policy does not name
    moved = "https://bucket.s3.eu-west-3.example.net/put"
    addon, tctx = guard(policy_file, "grow")
    with tctx:
        first = raw_upload(jpeg, STRICT)
        await run(addon, first)
        first.response = http.Response.make(status, b"", {"Location": moved})
        addon.response(first)
        repeat = raw_upload(jpeg, moved)
        record = await run(addon, repeat)
        again = raw_upload(jpeg, moved)  # served once: a second one goes as the policy has it
        again_record = await run(addon, again)
        elsewhere = raw_upload(jpeg, "https://bucket.s3.eu-west-3.example.net/other")
        addon.requestheaders(elsewhere)
    assert repeat.request.raw_content == grow(jpeg) == first.request.raw_content
    assert repeat.request.headers["Content-Length"] == str(len(grow(jpeg)))
    assert record["action"] == "protected" and record["site"] == "strict"
    assert again.request.raw_content == jpeg and again_record["reason"] == "no policy site matches"
    assert elsewhere.metadata[METADATA_KEY]["reason"] == "no policy site matches"


async def test_another_upload_where_a_redirect_is_awaited_goes_as_the_policy_has_it(
        policy_file: Path, jpeg: bytes) -> None:
    target = "https://upload.example.com/upload"  # the pics site's own address
    addon, tctx = guard(policy_file, "grow")
    with tctx:
        first = raw_upload(jpeg, STRICT)
        await run(addon, first)
        first.response = http.Response.make(308, b"", {"Location": target})
        addon.response(first)
        altered = jpeg[:100] + bytes(255 - b for b in jpeg[100:120]) + jpeg[120:]
        other = raw_upload(altered, target)  # another photo of the same length
        other_record = await run(addon, other)
        big = raw_upload(jpeg, target)  # a length past the site's: streamed, never held
        big.request.headers["Content-Length"] = str(5 * 2**30)
        addon.requestheaders(big)
    assert other_record["action"] == "protected" and other_record["site"] == "pics"
    assert big.metadata[METADATA_KEY]["action"] == "streamed" and big.request.stream


async def test_a_redirect_is_awaited_for_a_few_minutes_only(policy_file: Path,
                                                            jpeg: bytes) -> None:
    now = [0.0]
    addon, tctx = guard(policy_file, "grow")
    addon._redirects._clock = lambda: now[0]  # type: ignore[attr-defined]
    with tctx:
        first = raw_upload(jpeg, STRICT)
        await run(addon, first)
        first.response = http.Response.make(307, b"", {"Location": "/moved"})
        addon.response(first)
        now[0] = 299.0
        in_time = raw_upload(jpeg, "https://strict.example.com/moved")
        addon.requestheaders(in_time)
        now[0] = 301.0
        late = raw_upload(jpeg, "https://strict.example.com/moved")
        addon.requestheaders(late)
    assert in_time.metadata[METADATA_KEY]["reason"].startswith("may repeat a protected upload")
    assert not late.metadata[METADATA_KEY]["reason"].startswith("may repeat a protected upload")


async def test_a_redirect_to_no_address_a_client_can_use_is_no_error(
        policy_file: Path, jpeg: bytes) -> None:
    addon, tctx = guard(policy_file, "grow")
    with tctx:
        first = raw_upload(jpeg, STRICT)
        await run(addon, first)
        first.response = http.Response.make(307, b"", {"Location": "https://host:port/x"})
        addon.response(first)  # raised ValueError from urlsplit's port
        assert first.request.raw_content == grow(jpeg)


@pytest.mark.parametrize(("location", "length"), [
    ("https://bucket.s3.eu-west-3.example.net/put", None),  # a chunked repeat: no length
    ("https://bucket.s3.eu-west-3.example.net/put#part", "same"),  # clients drop a fragment
    ("https://Bucket.S3.eu-west-3.example.net:443/put", "same"),  # the host as clients send it
])
async def test_a_repeat_is_known_however_its_address_and_length_are_written(
        policy_file: Path, jpeg: bytes, location: str, length: str | None) -> None:
    moved = "https://bucket.s3.eu-west-3.example.net/put"
    addon, tctx = guard(policy_file, "grow")
    with tctx:
        other = jpeg + bytes(7)  # a second upload redirected to the same address
        for photo in (jpeg, other):
            first = raw_upload(photo, STRICT)
            await run(addon, first)
            first.response = http.Response.make(307, b"", {"Location": location})
            addon.response(first)
        headers = [("Content-Type", "image/jpeg")] + (
            [("Content-Length", str(len(jpeg)))] if length else [("Transfer-Encoding", "chunked")])
        repeat = make_flow(moved, jpeg, headers)
        record = await run(addon, repeat)
    assert repeat.request.raw_content == grow(jpeg) and record["action"] == "protected"


async def test_longer_rewrite_fixes_every_length_header_in_place(policy_file: Path,
                                                                 jpeg: bytes) -> None:
    addon, tctx = guard(policy_file, "grow")
    with tctx:
        flow = raw_upload(jpeg)
        await run(addon, flow)
    new = grow(jpeg)
    assert flow.request.raw_content == new
    assert [k for k, _ in flow.request.headers.fields] == [
        b"Content-Type", b"X-Entity-Length", b"Content-Length", b"X-Other"]
    assert flow.request.headers["Content-Length"] == str(len(new))
    assert flow.request.headers["X-Entity-Length"] == str(len(new))
    assert flow.request.headers["X-Other"] == "kept"


async def test_multipart_rewrite_changes_only_the_image_bytes(policy_file: Path,
                                                              jpeg: bytes) -> None:
    addon, tctx = guard(policy_file, "grow")
    body = multipart(jpeg)
    with tctx:
        flow = make_flow(UPLOAD, body, [
            ("Content-Type", f"multipart/form-data; boundary={BOUNDARY}"),
            ("Content-Length", str(len(body)))])
        record = await run(addon, flow)
    assert flow.request.raw_content == body.replace(jpeg, grow(jpeg))
    assert flow.request.headers["Content-Length"] == str(len(body) + 9)
    assert record["images"][0]["location"] == "multipart part 'file'"


async def test_binary_sibling_parts_keep_every_byte(policy_file: Path, jpeg: bytes) -> None:
    # mitmproxy's multipart_form drops CR/LF bytes inside binary parts (UPLOADS.md): the
    # splice must leave a sibling full of them, and its part headers, exactly as sent.
    # (No CRLF--XyZ inside: RFC 2046 forbids the delimiter in a part, and the splicer
    # refuses such a body, forwarding it untouched.)
    blob = b"\r\n\r\n--XyQ\r\nContent-Type: y\r\n\x00\xff\r--\n\r"
    sibling = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"blob\"; "
               f"filename=\"b.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
               ).encode() + blob + b"\r\n"
    body = sibling + multipart(jpeg)
    addon, tctx = guard(policy_file, "grow")
    with tctx:
        flow = make_flow(UPLOAD, body, [
            ("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")])
        record = await run(addon, flow)
    assert record["action"] == "protected"
    assert flow.request.raw_content == sibling + multipart(grow(jpeg))


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (b"--XyZ\r\nbroken", [("Content-Type", "multipart/form-data; boundary=XyZ")],
         "malformed body"),
        (b"just text", [("Content-Type", "text/plain")], "no image"),
    ],
)
async def test_requests_without_a_usable_image_go_out_byte_identical(
        policy_file: Path, body: bytes, headers: list[tuple[str, str]], reason: str) -> None:
    addon, tctx = guard(policy_file)
    with tctx:
        flow = make_flow(UPLOAD, body, headers)
        record = await run(addon, flow)
    assert flow.request.raw_content == body
    assert record["action"] == "untouched" and reason in record["reason"]


async def test_an_image_without_a_face_goes_out_byte_identical(policy_file: Path,
                                                               jpeg: bytes) -> None:
    addon, tctx = guard(policy_file, "same")
    with tctx:
        flow = raw_upload(jpeg)
        record = await run(addon, flow)
    assert flow.request.raw_content == jpeg
    assert record["action"] == "untouched" and "no face" in record["reason"]


# --- RFC 9530 digests: the SDK's fix-up, through the proxy ---------------------------------

def digest_of(algorithm: str, body: bytes) -> str:
    return base64.b64encode(hashlib.new(algorithm.replace("-", ""), body).digest()).decode()


async def test_content_and_repr_digests_are_recomputed_for_the_new_body(
        policy_file: Path, jpeg: bytes) -> None:
    addon, tctx = guard(policy_file, "grow")
    with tctx:
        flow = raw_upload(jpeg)
        flow.request.headers["Content-Digest"] = f"sha-256=:{digest_of('sha-256', jpeg)}:"
        flow.request.headers["Repr-Digest"] = (f"sha-512=:{digest_of('sha-512', jpeg)}:, "
                                               f"sha-256=:{digest_of('sha-256', jpeg)}:")
        record = await run(addon, flow)
    new = grow(jpeg)
    assert record["action"] == "protected" and flow.request.raw_content == new
    assert flow.request.headers["Content-Digest"] == f"sha-256=:{digest_of('sha-256', new)}:"
    assert flow.request.headers["Repr-Digest"] == (f"sha-512=:{digest_of('sha-512', new)}:, "
                                                   f"sha-256=:{digest_of('sha-256', new)}:")


@pytest.mark.parametrize(("name", "value", "why"), [
    ("Content-Digest", "md5=:AAAAAAAAAAAAAAAAAAAAAA==:", "unsupported algorithm md5"),
    ("Repr-Digest", "sha-256=:AAAA:, blake3=:AAAA:", "unsupported algorithm blake3"),
    ("Content-Digest", "sha-256=:" + "A" * 43 + "=:", "does not match the body"),
    ("Content-Digest", "sha-256=AAAA", "malformed"),
])
async def test_a_digest_that_cannot_be_recomputed_leaves_the_upload_untouched(
        policy_file: Path, jpeg: bytes, name: str, value: str, why: str) -> None:
    addon, tctx = guard(policy_file, "flip")
    with tctx:
        flow = make_flow(UPLOAD, jpeg, [("Content-Type", "image/jpeg"), (name, value)])
        before = list(flow.request.headers.fields)
        record = await run(addon, flow)
    assert (flow.request.raw_content, list(flow.request.headers.fields)) == (jpeg, before)
    assert flow.response is None and notices == []
    assert record["action"] == "untouched" and why in record["reason"]
    assert name in record["reason"]
    # A block site never sends the photo as it is: it refuses the upload, and says why.
    addon, tctx = guard(policy_file, "flip")
    with tctx:
        flow = make_flow(STRICT, jpeg, [("Content-Type", "image/jpeg"), (name, value)])
        record = await run(addon, flow)
    assert flow.response is not None and flow.response.status_code == 403
    assert record["action"] == "blocked" and why in record["reason"]


async def test_a_photo_labelled_a_video_on_a_block_site_is_looked_at(
        policy_file: Path, jpeg: bytes) -> None:
    # the label is the client's word: a block site's body within the limit is sniffed
    for url, action in ((STRICT, "protected"), (UPLOAD, "ignored")):
        addon, tctx = guard(policy_file, "flip")
        with tctx:
            flow = make_flow(url, jpeg, [("Content-Type", "video/mp4"),
                                         ("Content-Length", str(len(jpeg)))])
            addon.requestheaders(flow)
            if not flow.request.stream:
                await addon.request(flow)
        assert flow.metadata[METADATA_KEY]["action"] == action
        assert flow.request.raw_content == (flip(jpeg) if action == "protected" else jpeg)


async def test_digests_in_the_trailers_are_recomputed_for_the_new_body(
        policy_file: Path, jpeg: bytes) -> None:
    # a client that hashes the body as it streams sends the digest after it (chunked, HTTP/2)
    addon, tctx = guard(policy_file, "grow")
    with tctx:
        flow = make_flow(UPLOAD, jpeg, [("Content-Type", "image/jpeg"),
                                        ("Trailer", "Content-Digest, Upload-Checksum")])
        flow.request.trailers = http.Headers(
            [(b"Content-Digest", f"sha-256=:{digest_of('sha-256', jpeg)}:".encode()),
             (b"Upload-Checksum", f"sha1 {digest_of('sha1', jpeg)}".encode())])
        record = await run(addon, flow)
    new = grow(jpeg)
    assert record["action"] == "protected" and flow.request.raw_content == new
    assert list(flow.request.headers.fields) == [(b"Content-Type", b"image/jpeg"),
                                                 (b"Trailer", b"Content-Digest, Upload-Checksum")]
    assert flow.request.trailers is not None
    assert list(flow.request.trailers.fields) == [
        (b"Content-Digest", f"sha-256=:{digest_of('sha-256', new)}:".encode()),
        (b"Upload-Checksum", f"sha1 {digest_of('sha1', new)}".encode())]


async def test_a_trailer_that_cannot_be_recomputed_leaves_the_upload_untouched(
        policy_file: Path, jpeg: bytes) -> None:
    for url, action in ((UPLOAD, "untouched"), (STRICT, "blocked")):
        addon, tctx = guard(policy_file, "flip")
        with tctx:
            flow = make_flow(url, jpeg, [("Content-Type", "image/jpeg")])
            flow.request.trailers = http.Headers(x_file_md5=hashlib.md5(jpeg).hexdigest())
            record = await run(addon, flow)
        assert record["action"] == action and "x-file-md5 states the body's md5" in \
            record["reason"]
        assert flow.request.raw_content == jpeg


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@pytest.mark.parametrize(
    ("url", "headers", "body", "action"),
    [
        # gzip-encoded: the hook cannot rewrite it; inflated, it holds a photo
        (STRICT, [("Content-Type", "image/jpeg"), ("Content-Encoding", "gzip")], "gz-jpeg",
         "blocked"),
        (STRICT, [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")], "gz-text",
         "untouched"),
        (STRICT, [("Content-Type", "image/jpeg"), ("Content-Encoding", "br")], "jpeg", "blocked"),
        # a signed site that blocks: a photo it cannot rewrite is refused, not streamed by
        ("https://signed-strict.example.com/x", [("Content-Type", "image/jpeg")], "jpeg",
         "blocked"),
        ("https://signed.example.com/x", [("Content-Type", "image/jpeg")], "jpeg", "ignored"),
    ],
)
async def test_a_block_site_gets_no_photo_it_cannot_rewrite(
        policy_file: Path, jpeg: bytes, url: str, headers: list[tuple[str, str]], body: str,
        action: str) -> None:
    data = {"jpeg": jpeg, "gz-jpeg": _gzip(jpeg), "gz-text": _gzip(b"hello" * 20000)}[body]
    addon, tctx = guard(policy_file, "flip")
    with tctx:
        flow = make_flow(url, data, [*headers, ("Content-Length", str(len(data)))])
        record = await run(addon, flow)
    assert record["action"] == action, record
    if action == "blocked":
        assert flow.response is not None and flow.response.status_code == 403
    else:
        assert flow.response is None and flow.request.raw_content == data


async def test_an_image_past_the_limit_of_a_block_site_is_refused_before_its_body(
        policy_file: Path, jpeg: bytes) -> None:
    addon, tctx = guard(policy_file, "flip", grasp_max_buffer=1024)
    with tctx:
        flow = make_flow(STRICT, b"", [("Content-Type", "image/jpeg"),
                                       ("Content-Length", str(10**6))])
        addon.requestheaders(flow)  # the body has not arrived, and never goes
    assert flow.response is not None and flow.response.status_code == 403
    assert not flow.request.stream and notices[-1]["action"] == "blocked"
    assert "exceeds the 1024-byte limit" in notices[-1]["reason"]


async def test_an_image_mitmproxy_streams_already_is_cut_off_on_a_block_site(
        policy_file: Path) -> None:
    # stream_large_bodies set the flow streaming before the hook: no answer can replace it
    addon, tctx = guard(policy_file, "flip", grasp_max_buffer=1024)
    with tctx:
        flow = make_flow(STRICT, b"", [("Content-Type", "image/jpeg"),
                                       ("Content-Length", str(10**6))])
        flow.request.stream = True
        addon.requestheaders(flow)
    assert flow.response is None and flow.error is not None  # killed
    assert notices[-1]["action"] == "blocked"


async def test_an_empty_image_body_on_a_block_site_is_not_refused(policy_file: Path) -> None:
    addon, tctx = guard(policy_file, "flip")
    with tctx:
        flow = make_flow(STRICT, b"", [("Content-Type", "image/jpeg"), ("Content-Length", "0")])
        record = await run(addon, flow)
    assert flow.response is None and record["action"] == "ignored"


# --- failures: pass or block ---------------------------------------------------------------

FAILURES = [("down", 503, "ServiceUnavailable"), ("crash", 502, "KeyError"),
            ("slow", 504, "did not answer in time"), ("not_image", 502, "non-image")]


@pytest.mark.parametrize(("mode", "status", "why"), FAILURES)
async def test_pass_site_forwards_the_original_byte_identical(policy_file: Path, jpeg: bytes,
                                                              mode: str, status: int,
                                                              why: str) -> None:
    addon, tctx = guard(policy_file, mode, grasp_timeout="0.2")
    with tctx:
        flow = raw_upload(jpeg)
        before = (flow.request.raw_content, list(flow.request.headers.fields))
        record = await run(addon, flow)
    assert (flow.request.raw_content, list(flow.request.headers.fields)) == before
    assert flow.response is None
    assert record["action"] == "passed" and why in record["reason"]
    assert notices == [record]


@pytest.mark.parametrize(("mode", "status", "why"), FAILURES)
async def test_block_site_refuses_with_the_reason(policy_file: Path, jpeg: bytes, mode: str,
                                                  status: int, why: str) -> None:
    addon, tctx = guard(policy_file, mode, grasp_timeout="0.2")
    with tctx:
        flow = raw_upload(jpeg, STRICT)
        record = await run(addon, flow)
    assert flow.response is not None and flow.response.status_code == status
    error = json.loads(flow.response.content or b"")["error"]
    assert error["site"] == "strict" and why in error["reason"]
    assert "blocks unprotected uploads" in error["message"]
    assert flow.response.headers["X-Grasp-Guard"] == "blocked"
    assert record["action"] == "blocked" and notices == [record]


async def test_a_failing_notify_hook_is_logged_not_raised(policy_file: Path, jpeg: bytes,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    def broken(flow: http.HTTPFlow, record: dict[str, Any]) -> None:
        raise RuntimeError("notifier down")

    addon = GraspGuard(protect=FakeProtect("down"), notify=broken)
    with taddons.context(addon) as tctx, caplog.at_level(logging.ERROR):
        tctx.configure(addon, grasp_policy=str(policy_file))
        flow = raw_upload(jpeg)
        record = await run(addon, flow)
    assert record["action"] == "passed"
    assert "notify hook failed" in caplog.text


@pytest.mark.parametrize("state", ["response", "error", "dead"])
async def test_hooks_leave_finished_flows_alone(policy_file: Path, jpeg: bytes,
                                                state: str) -> None:
    addon, tctx = guard(policy_file)
    with tctx:
        flow = raw_upload(jpeg)
        addon.requestheaders(flow)
        if state == "response":
            flow.response = http.Response.make(204)
        elif state == "error":
            flow.error = tflow.terr()
        else:
            flow.live = False
        await addon.request(flow)
    assert flow.request.raw_content == jpeg
    assert flow.metadata[METADATA_KEY]["action"] == "buffered"


# --- the real service client ---------------------------------------------------------------

async def test_the_service_client_is_used_with_its_token(policy_file: Path, jpeg: bytes) -> None:
    seen: list[str] = []

    async def protect(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.query.get("site") == "strict":
            return web.json_response({"error": {"kind": "invalid_image", "message": "no"}},
                                     status=422)
        return web.Response(body=flip(await request.read()), content_type="image/jpeg",
                            headers={"X-Grasp-Report": '{"faces": 1, "protected": true}'})

    app = web.Application()
    app.router.add_post("/v1/protect", protect)
    async with TestServer(app, host="127.0.0.1") as server:
        addon = GraspGuard()
        with taddons.context(addon) as tctx:
            tctx.configure(addon, grasp_policy=str(policy_file), grasp_token="s3cret",
                           grasp_service=[str(server.make_url(""))])
            ok, refused = raw_upload(jpeg), raw_upload(jpeg, STRICT)
            await run(addon, ok)
            await run(addon, refused)
    assert ok.request.raw_content == flip(jpeg)
    assert refused.response is not None and refused.response.status_code == 502
    assert "invalid_image" in json.loads(refused.response.content or b"")["error"]["reason"]
    assert seen == ["Bearer s3cret"] * 2


async def test_an_unreachable_service_is_a_failure_not_an_escape(policy_file: Path,
                                                                 jpeg: bytes) -> None:
    from proxy_addon.launch import free_port

    addon = GraspGuard()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, grasp_policy=str(policy_file), grasp_timeout="1",
                       grasp_service=[f"http://127.0.0.1:{free_port()}"])
        flow = raw_upload(jpeg, STRICT)
        record = await run(addon, flow)
    assert record["action"] == "blocked"
    assert flow.response is not None and flow.response.status_code in (503, 504)


# --- WebSocket messages ---------------------------------------------------------------------

def websocket_to(host: str, content: bytes, from_client: bool = True) -> http.HTTPFlow:
    flow = tflow.twebsocketflow()
    flow.request.host = host
    flow.websocket.messages.append(websocket.WebSocketMessage(Opcode.BINARY, from_client, content))
    return flow


async def test_a_websocket_photo_to_a_block_sites_host_is_dropped(policy_file: Path,
                                                                   jpeg: bytes) -> None:
    addon, tctx = guard(policy_file)
    with tctx:
        flow = websocket_to("strict.example.com", b"\x00\x01" + jpeg)
        addon.websocket_message(flow)
    assert flow.websocket.messages[-1].dropped
    assert notices[-1]["action"] == "blocked" and notices[-1]["site"] == "strict"


@pytest.mark.parametrize(
    ("host", "content", "from_client"),
    [
        ("upload.example.com", "jpeg", True),   # a pass site: its on_failure lets it go
        ("elsewhere.example", "jpeg", True),     # no site
        ("strict.example.com", "text", True),    # no image
        ("strict.example.com", "jpeg", False),   # from the server
    ],
)
async def test_other_websocket_messages_go_as_they_are(policy_file: Path, jpeg: bytes, host: str,
                                                       content: str, from_client: bool) -> None:
    addon, tctx = guard(policy_file)
    with tctx:
        flow = websocket_to(host, jpeg if content == "jpeg" else b'{"type": "typing"}', from_client)
        addon.websocket_message(flow)
    assert not flow.websocket.messages[-1].dropped and notices == []
