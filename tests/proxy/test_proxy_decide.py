"""The buffer-stream-ignore decision, as a table."""

from __future__ import annotations

import pytest
from _proxy_helpers import POLICY
from grasp_sdk import parse_policy
from mitmproxy import http

from proxy_addon.decide import SMALL_BODY, CachedMatcher, decide

UPLOAD = "https://upload.example.com/upload"
STRICT = "https://strict.example.com/put"
BIG = str(SMALL_BODY + 1)


@pytest.mark.parametrize(
    ("method", "url", "headers", "action", "reason"),
    [
        ("POST", UPLOAD, {"Content-Type": "image/jpeg", "Content-Length": "5000"}, "buffer",
         "candidate upload for site 'pics'"),
        # undeclared length: buffered, bounded by mitmproxy's stream_large_bodies
        ("PUT", UPLOAD, {"Content-Type": "multipart/form-data; boundary=x"}, "buffer",
         "candidate"),
        ("post", UPLOAD, {"content-length": "100000"}, "buffer", "candidate"),  # at max_bytes
        ("GET", UPLOAD, {}, "ignore", "GET carries no upload"),
        ("HEAD", UPLOAD, {}, "ignore", "HEAD carries no upload"),
        ("OPTIONS", UPLOAD, {}, "ignore", "OPTIONS carries no upload"),
        # not matched: small declared bodies are left to mitmproxy, others stream
        ("PATCH", UPLOAD, {"Content-Length": "5"}, "ignore", "no policy site matches"),
        ("POST", "https://upload.example.com/elsewhere", {"Content-Length": BIG}, "stream",
         "no policy site matches"),
        ("POST", "https://other.example.com/upload", {"Transfer-Encoding": "chunked"},
         "stream", "no policy site matches"),
        ("POST", "https://other.example.com/upload", {"Content-Length": str(SMALL_BODY)},
         "ignore", "no policy site matches"),
        # matched, but not a candidate
        ("POST", UPLOAD, {"Content-Type": "video/mp4", "Content-Length": "5000"}, "ignore",
         "video/mp4 is not an image"),
        ("POST", UPLOAD, {"Content-Type": "Audio/ogg; codecs=opus"}, "stream",
         "audio/ogg is not an image"),
        ("POST", UPLOAD, {"Content-Length": "100001"}, "stream",
         "body of 100001 bytes exceeds the 100000-byte limit"),
        ("POST", UPLOAD, {"Content-Length": "0"}, "ignore", "empty body"),
        ("POST", UPLOAD, {"Content-Length": "many"}, "stream", "unreadable Content-Length"),
        ("POST", UPLOAD, {"Content-Encoding": "gzip", "Content-Length": BIG}, "stream",
         "the body is gzip-encoded"),
        ("POST", "https://signed.example.com/x", {"Content-Length": "50"}, "ignore", "signed"),
        # a block site: what the hook would leave alone is buffered for it to refuse
        ("POST", STRICT, {"Content-Encoding": "gzip", "Content-Length": BIG}, "buffer",
         "candidate upload for site 'strict'"),
        ("POST", "https://signed-strict.example.com/x", {"Content-Length": "50"}, "buffer",
         "candidate upload for site 'signed-strict'"),
    ],
)
def test_decision_table(method: str, url: str, headers: dict[str, str], action: str,
                        reason: str) -> None:
    decision = decide(method, url, _h(headers), parse_policy(POLICY), max_buffer=10**9)
    assert decision.action == action
    assert reason in decision.reason


def test_max_buffer_caps_a_sites_max_bytes() -> None:
    decision = decide("POST", UPLOAD, _h({"Content-Length": "2000"}), parse_policy(POLICY),
                      max_buffer=1024)
    assert (decision.action, decision.site) == ("ignore", "pics")
    assert "exceeds the 1024-byte limit" in decision.reason


def _h(headers: dict[str, str]) -> http.Headers:
    return http.Headers([(k.encode(), v.encode()) for k, v in headers.items()])


@pytest.mark.parametrize("url", [
    UPLOAD, UPLOAD + "?a=1", UPLOAD + "#frag", UPLOAD + "/x", "https://UPLOAD.example.com/upload",
    "https://upload.example.com:8443/upload?q", "https://strict.example.com/?x#y",
    "https://nowhere.example.com/upload"])
@pytest.mark.parametrize("method", ["POST", "put", "GET"])
def test_cached_matcher_answers_as_the_policy_does(url: str, method: str) -> None:
    policy = parse_policy(POLICY)
    cached = CachedMatcher(policy, size=3)
    for _ in range(2):
        assert cached.match(method, url) == policy.match(method, url)


def test_cached_matcher_stays_bounded() -> None:
    cached = CachedMatcher(parse_policy(POLICY), size=3)
    for i in range(10):
        cached.match("POST", f"https://h{i}.example.com/")
    assert len(cached._seen) <= 3


@pytest.mark.parametrize(
    ("content_type", "action"),
    [("image/jpeg", "refuse"), ("Image/HEIC", "refuse"), ("multipart/form-data; boundary=x", "stream"),
     ("video/mp4", "stream")],
)
def test_an_image_past_the_limit_of_a_block_site_is_refused_before_its_body(
        content_type: str, action: str) -> None:
    headers = _h({"Content-Type": content_type, "Content-Length": BIG})
    decision = decide("POST", STRICT, headers, parse_policy(POLICY), max_buffer=1024)
    assert (decision.action, decision.site) == (action, "strict")
    assert "exceeds the 1024-byte limit" in decision.reason or "not an image" in decision.reason
    passing = decide("POST", UPLOAD, headers, parse_policy(POLICY), max_buffer=1024)
    assert passing.action in ("stream", "ignore")


def test_a_video_of_unknown_length_streams_on_a_block_site_too() -> None:
    # its label is looked behind only within a known length: a live video is never held
    chunked = _h({"Content-Type": "video/mp4", "Transfer-Encoding": "chunked"})
    assert decide("POST", STRICT, chunked, parse_policy(POLICY), max_buffer=1024).action == "stream"
    known = _h({"Content-Type": "video/mp4", "Content-Length": "900"})
    assert decide("POST", STRICT, known, parse_policy(POLICY), max_buffer=1024).action == "buffer"
