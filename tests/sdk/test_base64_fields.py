"""Images as base64 text in JSON and urlencoded forms: found, and put back minimally."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, quote, quote_plus, urlencode

import pytest
from grasp_sdk.base64_fields import (
    decode_base64_text,
    decode_image_text,
    find_form_images,
    find_json_images,
    requote,
)
from grasp_sdk.splice import MalformedBody, apply_edits

NEW = b"\xff\xd8\xff\xe0NEW/+?" * 7  # base64 of it holds '/' and '+'


def replace_all(body: bytes, slots: list, new: bytes = NEW) -> bytes:
    return apply_edits(body, [e for s in slots for e in s.edits(new)])


@pytest.mark.parametrize("encode", [
    lambda d: base64.b64encode(d).decode(),
    lambda d: base64.urlsafe_b64encode(d).decode().rstrip("="),
    lambda d: "data:image/jpeg;base64," + base64.b64encode(d).decode(),
    lambda d: "data:image/png;name=a.png;base64," + base64.b64encode(d).decode(),
    lambda d: base64.encodebytes(d).decode(),  # MIME: 76-character lines, trailing newline
    lambda d: base64.encodebytes(d).decode().replace("\n", "\r\n").rstrip(),
])
def test_styles_round_trip(jpeg: bytes, encode: Callable[[bytes], str]) -> None:
    text = encode(jpeg)
    style, data = decode_image_text(text)
    assert data == jpeg
    assert style.encode(jpeg) == text  # written back exactly as the client wrote it
    assert decode_image_text(style.encode(NEW))[1] == NEW


@pytest.mark.parametrize("text", [
    "hello world, not base64 at all",
    base64.b64encode(b"plain text that is long enough to check").decode(),
    "data:text/plain;base64," + base64.b64encode(b"x" * 40).decode(),
    "ab+-" * 10,
])
def test_non_images_are_ignored(text: str) -> None:
    assert decode_image_text(text) is None


@pytest.mark.parametrize(("text", "data"), [
    ("AAEC", b"\x00\x01\x02"),  # a short piece of an image: no magic bytes
    ("-_8", b"\xfb\xff"),  # URL-safe, unpadded
    (base64.b64encode(b"plain text that is long enough to check").decode(),
     b"plain text that is long enough to check"),
])
def test_any_bytes_decode_and_round_trip(text: str, data: bytes) -> None:
    style, decoded = decode_base64_text(text)
    assert decoded == data and style.encode(data) == text
    assert decode_image_text(text) is None


@pytest.mark.parametrize("end", ["\n", "\r\n"])
def test_one_line_and_its_end_stays_one_line_whatever_the_new_length(jpeg: bytes, end: str) -> None:
    style, _ = decode_image_text(base64.b64encode(jpeg).decode() + end)  # `base64 -w0; echo`
    longer = jpeg + b"\x00" * 30
    assert style.encode(longer) == base64.b64encode(longer).decode() + end


def test_url_safe_text_without_padding_stays_so_whatever_the_new_length() -> None:
    style, _ = decode_base64_text("-_8A")  # 3 bytes: no padding to tell either way
    assert style.encode(b"\xfb\xff") == "-_8" and style.encode(b"\xfb\xff\x00") == "-_8A"
    padded, _ = decode_base64_text("-_8=")
    assert padded.encode(b"\xfb\xff") == "-_8="


@pytest.mark.parametrize(("text", "shown"), [
    ("-_8A", False), ("-_8=", True), ("-_8", True), ("+/8A", True), ("+/8=", True), ("+/8", True),
])
def test_text_shows_whether_its_writer_pads_only_by_its_end_or_length(text: str, shown: bool) -> None:
    assert decode_base64_text(text)[0].padding_shown is shown


@pytest.mark.parametrize("text", ["", "hello world", "ab+-" * 10])
def test_any_bytes_still_need_base64(text: str) -> None:
    assert decode_base64_text(text) is None


def test_json_minimal_rewrite(jpeg: bytes, png: bytes) -> None:
    b64 = base64.b64encode(jpeg).decode()
    body = ('{"z": 1,  "nested": {"list": [true, null, "data:image\\/png;base64,'
            + base64.b64encode(png).decode().replace("/", "\\/")
            + '"], "caption": "caf\\u00e9 ☕"},\n "avatar": "' + b64 + '", "n": -1.5e3}').encode()
    slots = find_json_images(body)
    assert [s.location for s in slots] == ["json $.nested.list[2]", "json $.avatar"]
    assert [s.data for s in slots] == [png, jpeg]
    new_body = replace_all(body, slots)
    new_b64 = base64.b64encode(NEW).decode()
    expected = body.replace(b64.encode(), new_b64.encode()).replace(
        base64.b64encode(png).replace(b"/", b"\\/"), new_b64.replace("/", "\\/").encode())
    assert new_body == expected  # keys, order, spacing, escapes, non-ASCII untouched
    parsed = json.loads(new_body)
    assert parsed["avatar"] == new_b64
    assert parsed["nested"]["list"][2] == "data:image/png;base64," + new_b64


def test_json_after_a_byte_order_mark(jpeg: bytes) -> None:
    photo = base64.b64encode(jpeg).decode()
    body = b"\xef\xbb\xbf" + json.dumps({"caption": "caf\u00e9", "photo": photo}).encode()
    (slot,) = find_json_images(body)
    new_body = replace_all(body, [slot])
    assert new_body.startswith(b"\xef\xbb\xbf")
    assert json.loads(new_body.decode("utf-8-sig"))["photo"] == base64.b64encode(NEW).decode()


def test_a_json_body_of_many_strings_is_read_in_linear_time(jpeg: bytes) -> None:
    import time

    tags = [f"étiquette {i}" for i in range(100_000)]  # 1.9 MB: quadratic was about 25 s
    body = json.dumps({"tags": tags, "photo": base64.b64encode(jpeg).decode()},
                      ensure_ascii=False).encode()
    started = time.perf_counter()
    (slot,) = find_json_images(body)
    assert time.perf_counter() - started < 5
    assert json.loads(replace_all(body, [slot]))["tags"] == tags


def test_json_fields_filter(jpeg: bytes) -> None:
    b64 = base64.b64encode(jpeg).decode()
    body = json.dumps({"banner": b64, "meta": {"avatar": b64}, "images": [b64]}).encode()
    assert [s.location for s in find_json_images(body, ["avatar", "images"])] == [
        "json $.meta.avatar", "json $.images[0]"]


@pytest.mark.parametrize("body", [b'{"a": 1', b'{"a": 1} x', b"{'a': 1}", b"\xff\xfe{}",
                                  b'{"a": tru}', b"[" * 5000])
def test_json_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        find_json_images(body)


def test_form_rewrite_keeps_quoting(jpeg: bytes) -> None:
    b64 = base64.b64encode(jpeg).decode()
    body = urlencode({"command": "APPEND", "media_id": "1", "media_data": b64,
                      "segment_index": "0"}).encode()
    (slot,) = find_form_images(body)
    assert slot.location == "form field 'media_data'" and slot.data == jpeg
    new_body = replace_all(body, [slot])
    fields = dict(parse_qsl(new_body.decode()))
    assert fields["media_data"] == base64.b64encode(NEW).decode()
    assert new_body.startswith(b"command=APPEND&media_id=1&media_data=")
    assert new_body.endswith(b"&segment_index=0")


def test_form_fields_filter(jpeg: bytes) -> None:
    b64 = quote_plus(base64.b64encode(jpeg).decode())
    body = f"a={b64}&media_data={b64}".encode()
    assert [s.location for s in find_form_images(body, ["media_data"])] == [
        "form field 'media_data'"]


@pytest.mark.parametrize(("original", "text", "expected"), [
    (quote_plus("ab+/=="), "x+y/z=", "x%2By%2Fz%3D"),
    (quote("ab+/==", safe="/"), "x+y/z=", "x%2By/z%3D"),  # '/' left literal, as the client did
    ("ab%2b%2f%3d", "x+/=", "x%2b%2f%3d"),  # lower-case hex kept
    ("abc", "a+b", "a%2Bb"),  # unseen: escaped unless unreserved
    ("name%3Dphoto-%C3%A9.jpg", "name=photo-é.jpg", "name%3Dphoto-%C3%A9.jpg"),  # UTF-8 bytes
    ("x", "é", "%C3%A9"),  # unseen past ASCII: its UTF-8 bytes, as a form writes them
])
def test_requote(original: str, text: str, expected: str) -> None:
    assert requote(original, text) == expected


@pytest.mark.parametrize("dumps", [
    json.dumps,  # non-ASCII as \u escapes
    lambda v: json.dumps(v, ensure_ascii=False),
    lambda v: json.dumps(v).replace("/", "\\/"),  # PHP's json_encode escapes slashes
])
def test_json_written_inside_a_json_string(jpeg: bytes, png: bytes, dumps: Callable) -> None:
    inner = {"caption": "café ☕ \"quoted\"", "photo": base64.b64encode(jpeg).decode(),
             "more": {"list": [1, "data:image/png;base64," + base64.b64encode(png).decode()]}}
    body = dumps({"id": "é", "payload": dumps(inner), "n": 2}).encode()
    slots = find_json_images(body)
    assert [s.location for s in slots] == ["json $.payload → json $.photo",
                                           "json $.payload → json $.more.list[1]"]
    assert [s.data for s in slots] == [jpeg, png]
    new_body = replace_all(body, slots)
    outer = json.loads(new_body)
    got = json.loads(outer["payload"])
    assert got == {**inner, "photo": base64.b64encode(NEW).decode(),
                   "more": {"list": [1, "data:image/png;base64," + base64.b64encode(NEW).decode()]}}
    assert {k: outer[k] for k in ("id", "n")} == {"id": "é", "n": 2}
    assert new_body.startswith(body[:body.index(b"payload") + 12])  # only the images' spans change
    assert new_body.endswith(body[-10:])


def test_json_inside_json_inside_json(jpeg: bytes) -> None:
    innermost = json.dumps({"image": base64.b64encode(jpeg).decode()})
    body = json.dumps({"rpc": [["upload", json.dumps({"args": innermost})]]}).encode()
    (slot,) = find_json_images(body)
    assert slot.location == "json $.rpc[0][1] → json $.args → json $.image"
    new = json.loads(json.loads(json.loads(replace_all(body, [slot]))["rpc"][0][1])["args"])
    assert new == {"image": base64.b64encode(NEW).decode()}


@pytest.mark.parametrize(("fields", "found"), [
    ((), 1), (("payload",), 1), (("photo",), 1), (("other",), 0)])
def test_fields_reach_into_json_inside_a_string(jpeg: bytes, fields: tuple[str, ...],
                                                found: int) -> None:
    body = json.dumps({"payload": json.dumps({"photo": base64.b64encode(jpeg).decode()})})
    assert len(find_json_images(body.encode(), fields)) == found


@pytest.mark.parametrize("text", ["{not json", "[1, 2", "{} trailing", '{"a": "\\ud83d"}'])
def test_a_string_that_only_looks_like_json_is_text(text: str) -> None:
    assert find_json_images(json.dumps({"note": text}).encode()) == []


@pytest.mark.parametrize("quote_value", [quote_plus, quote, lambda v: quote(v, safe='{}":,')])
def test_json_written_in_a_form_value(jpeg: bytes, quote_value: Callable) -> None:
    payload = json.dumps({"name": "été", "photo": base64.b64encode(jpeg).decode()})
    body = f"a=1&data={quote_value(payload)}&z=%C3%A9".encode()
    (slot,) = find_form_images(body)
    assert slot.location == "form field 'data' → json $.photo" and slot.data == jpeg
    new_body = replace_all(body, [slot])
    pairs = dict(parse_qsl(new_body.decode()))
    assert json.loads(pairs["data"]) == {"name": "été", "photo": base64.b64encode(NEW).decode()}
    assert new_body.startswith(b"a=1&data=") and new_body.endswith(b"&z=%C3%A9")


def test_short_strings_leave_the_collector_idle(jpeg: bytes) -> None:
    # Each string kept was objects that live: 150k tags set the collector going hundreds of
    # times, full passes over a proxy's whole heap among them (0.3 s each on a busy machine).
    import gc

    body = json.dumps({"tags": [f"tag {i}" for i in range(150_000)],
                       "photo": base64.b64encode(jpeg).decode()}).encode()
    passes = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            passes.append(info["generation"])

    gc.collect()
    gc.callbacks.append(count)
    try:
        slots = find_json_images(body)
    finally:
        gc.callbacks.remove(count)
    assert [s.location for s in slots] == ["json $.photo"]
    assert len(passes) < 20, f"{len(passes)} collections, {passes.count(2)} of them full"


@pytest.mark.parametrize("quote_bytes", [
    lambda d: urlencode({"caption": "me", "photo": d}).encode(),  # requests' data={...}
    lambda d: ("caption=me&photo=" + re.sub("%..", lambda m: m.group().lower(),
                                             quote(d, safe=""))).encode(),
])
def test_an_images_own_bytes_percent_encoded_in_a_form(jpeg: bytes,
                                                       quote_bytes: Callable) -> None:
    body = quote_bytes(jpeg)
    slots = find_form_images(body, ["photo"])
    assert [(s.location, s.data, s.media_type) for s in slots] == [
        ("form field 'photo'", jpeg, "image/jpeg")]
    out = replace_all(body, slots)
    assert dict(parse_qsl(out.decode(), encoding="latin-1")) == {
        "caption": "me", "photo": NEW.decode("latin-1")}
    assert out.startswith(b"caption=me&photo=")
    assert bool(re.search(b"%[a-f]", out)) == bool(re.search(b"%[a-f]", body))  # its hex case
    assert find_form_images(body, ["caption"]) == []
