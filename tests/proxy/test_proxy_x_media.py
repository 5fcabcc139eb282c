"""X's chunked media upload on the wire: commands, INIT's answer, an APPEND's segment.

The v2 shapes are those of docs.x.com/x-api/media (quickstart and reference pages) and of
X's OpenAPI document (``AppendMediaUploadRequest``: ``media`` binary or base64).
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, urlencode

import pytest
from grasp_sdk.splice import MalformedBody

from proxy_addon.x_media import (
    Append,
    Declared,
    Finalize,
    Init,
    accepted,
    init_answer,
    parse_command,
    segment_of,
)

URL = "https://upload.x.com/i/media/upload.json"
V2 = "https://api.x.com/2/media/upload"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
BOUNDARY = "xB0und"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
PIECE = b"\xff\xd8\xff\xe0\r\n--not-it\r\n\x00" + bytes(range(256))


def multipart(fields: dict[str, bytes]) -> bytes:
    out = b""
    for name, value in fields.items():
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\""
                + ('; filename="blob"\r\nContent-Type: application/octet-stream'
                   if name == "media" else "") + "\r\n\r\n").encode() + value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize(("url", "content_type", "body", "command"), [
    (URL + "?command=INIT&total_bytes=1234&media_type=image%2Fjpeg&media_category=tweet_image",
     "", b"", Init(1234, "image/jpeg")),
    (URL, FORM, b"command=INIT&total_bytes=99&media_type=image/png", Init(99, "image/png")),
    (URL, MULTIPART, multipart({"command": b"INIT", "total_bytes": b"7"}), Init(7, "")),
    (URL + "?command=APPEND&media_id=1880028106020515840&segment_index=2", MULTIPART,
     multipart({"media": PIECE}), Append("1880028106020515840", 2)),
    (URL, MULTIPART, multipart({"command": b"APPEND", "media_id": b"5", "segment_index": b"0",
                                "media": PIECE}), Append("5", 0)),
    (URL, FORM, b"command=APPEND&media_id=5&segment_index=1&media_data=AAEC", Append("5", 1)),
    (URL + "?command=finalize&media_id=5", "", b"", Finalize("5")),
    (URL + "?command=STATUS&media_id=5", "", b"", None),
    (URL + "?command=APPEND&media_id=5&segment_index=-1", "", b"", None),
    (URL + "?command=APPEND&segment_index=1", "", b"", None),
    (URL + "?command=INIT&total_bytes=many", "", b"", None),
    (URL, MULTIPART, b"--broken", None),
    (URL, "image/jpeg", PIECE, None),
    # X API v2, the command style: the quickstart's multipart form, or the query.
    (V2, MULTIPART, multipart({"command": b"INIT", "media_type": b"image/jpeg",
                               "total_bytes": b"1048576", "media_category": b"tweet_image"}),
     Init(1048576, "image/jpeg")),
    (V2, MULTIPART, multipart({"command": b"APPEND", "media_id": b"1880028106020515840",
                               "segment_index": b"0", "media": PIECE}),
     Append("1880028106020515840", 0)),
    (V2 + "?command=FINALIZE&media_id=1880028106020515840", "", b"",
     Finalize("1880028106020515840")),
    # X API v2, the dedicated endpoints.
    (V2 + "/initialize", JSON, (b'{"media_category": "tweet_image", "media_type": "image/png",'
                                b' "total_bytes": 268435, "shared": false}'),
     Init(268435, "image/png")),
    (V2 + "/1146654567674912769/append", MULTIPART,
     multipart({"segment_index": b"2", "media": PIECE}), Append("1146654567674912769", 2)),
    (V2 + "/1146654567674912769/append", JSON, b'{"media": "AAEC", "segment_index": 1}',
     Append("1146654567674912769", 1)),
    (V2 + "/1146654567674912769/finalize", "", b"", Finalize("1146654567674912769")),
    (V2 + "/initialize", JSON, b'{"media_type": "image/png"}', None),
    (V2 + "/initialize", JSON, b'{"total_bytes": true}', None),
    (V2 + "/1146654567674912769/append", JSON, b'{"media": "AAEC"}', None),
    (V2 + "/1146654567674912769/append", JSON, b"not json", None),
    (V2 + "/abc/append", JSON, b'{"media": "AAEC", "segment_index": 1}', None),
    (V2, JSON, b'{"media": "AAEC", "media_category": "tweet_image"}', None),  # one-shot
])
def test_commands_from_query_or_body(url: str, content_type: str, body: bytes,
                                     command: object) -> None:
    assert parse_command(url, content_type, body) == command


@pytest.mark.parametrize(("answer", "declared"), [
    (b'{"media_id": 1880028106020515840, "media_id_string": "1880028106020515840"}',
     Declared("1880028106020515840")),
    (b'{"media_id": 710511363345354753, "expires_after_secs": 86400}',
     Declared("710511363345354753", 86400)),
    ((b'{"data": {"id": "1880028106020515840", "media_key": "13_1880028106020515840",'
      b' "expires_after_secs": 1295999}}'), Declared("1880028106020515840", 1295999)),
    (b'{"data": {"id": "1", "expires_after_secs": -5}}', Declared("1")),
    (b'{"errors": [{"code": 324}]}', None),
    (b'{"data": {"media_key": "3_1"}}', None),
    (b'{"media_id": true}', None),
    (b"[1]", None),
    (b"<html>", None),
])
def test_init_answer(answer: bytes, declared: Declared | None) -> None:
    assert init_answer(answer) == declared


def test_the_proxy_answers_an_append_the_way_each_api_does() -> None:
    assert accepted(URL + "?command=APPEND", 1_700_000_000) == (204, b"", [])
    status, body, headers = accepted(V2 + "/1/append", 1_700_000_000)
    assert status == 200 and json.loads(body) == {"data": {"expires_at": 1_700_000_000}}
    assert headers == [(b"Content-Type", b"application/json; charset=utf-8")]
    assert json.loads(accepted(V2, None)[1]) == {"data": {}}


def test_binary_media_part_is_replaced_byte_exactly() -> None:
    body = multipart({"command": b"APPEND", "media": PIECE, "after": b"kept"})
    segment = segment_of(MULTIPART, body)
    assert segment.data == PIECE and segment.location == "multipart part 'media'"
    new = bytes(b ^ 0x55 for b in PIECE)
    assert segment.replace(new) == body.replace(PIECE, new)


def test_a_new_segment_holding_the_delimiter_is_refused() -> None:
    segment = segment_of(MULTIPART, multipart({"media": PIECE}))
    with pytest.raises(ValueError, match="delimiter"):
        segment.replace(b"\r\n--" + BOUNDARY.encode() + b"!" * (len(PIECE) - 10))


@pytest.mark.parametrize("encode", [
    lambda d: base64.b64encode(d).decode(),
    lambda d: base64.urlsafe_b64encode(d).decode().rstrip("="),
])
def test_base64_media_data_part_keeps_its_style(encode) -> None:  # type: ignore[no-untyped-def]
    body = multipart({"media_data": encode(PIECE).encode()})
    segment = segment_of(MULTIPART, body)
    assert segment.data == PIECE
    new = bytes(reversed(PIECE))
    assert segment.replace(new) == body.replace(encode(PIECE).encode(), encode(new).encode())


@pytest.mark.parametrize("quote_value", [
    lambda text: quote(text, safe=""),  # %2B %2F %3D, as browsers write them
    lambda text: re.sub("%..", lambda m: m[0].lower(), quote(text, safe="/")),  # %2b, '/'
])
def test_form_media_data_is_requoted_the_way_the_client_quoted_it(quote_value) -> None:  # type: ignore[no-untyped-def]
    piece = bytes(range(250, 256)) * 20  # base64 full of '+' and '/'
    b64 = base64.b64encode(piece).decode()
    body = f"command=APPEND&media_id=5&segment_index=0&media_data={quote_value(b64)}&x=1"
    segment = segment_of(FORM, body.encode())
    assert segment.data == piece and segment.location == "form field 'media_data'"
    new = bytes(reversed(piece))
    expected = body.replace(quote_value(b64), quote_value(base64.b64encode(new).decode()))
    assert segment.replace(new) == expected.encode()


@pytest.mark.parametrize(("content_type", "body", "why"), [
    (MULTIPART, multipart({"command": b"APPEND"}), "no multipart part"),
    (MULTIPART, multipart({"media_data": b"not base64!"}), "not base64"),
    (FORM, b"command=APPEND&media=abc", "no form field"),
    (FORM, b"media_data=%%%", "not base64"),
    (JSON, b"{}", "no JSON string 'media'"),
    (JSON, b'{"media": 5, "segment_index": 0}', "no JSON string 'media'"),
    (JSON, b'{"media": "not base64!"}', "not base64"),
    (JSON, b'{"media": "AAEC"} trailing', "extra data"),
    (JSON, b'["media", "AAEC"]', "not a JSON object"),
    (JSON, b'{"media" "AAEC"}', "not a JSON object"),
    ("text/plain", b"AAEC", "APPEND body of type"),
])
def test_an_append_without_its_segment_is_malformed(content_type: str, body: bytes,
                                                    why: str) -> None:
    with pytest.raises(MalformedBody, match=why):
        segment_of(content_type, body)


def test_urlencode_round_trip_of_a_whole_append() -> None:
    piece = b"\x00\x01\x02\xfb\xff"
    body = urlencode({"command": "APPEND", "media_id": "9", "segment_index": "3",
                      "media_data": base64.b64encode(piece).decode()}).encode()
    assert parse_command(URL, FORM, body) == Append("9", 3)
    assert segment_of(FORM, body).data == piece


@pytest.mark.parametrize(("body", "style"), [
    ('{"segment_index": 0, "media": "%s"}', base64.b64encode),
    ('{ "media" : "%s" ,\n "segment_index":0 }', base64.b64encode),
    ('{"media": "%s", "segment_index": 0}',
     lambda d: base64.b64encode(d).replace(b"/", b"\\/")),  # a client escaping '/'
])
def test_json_media_is_replaced_in_its_string_token_only(body: str, style) -> None:  # type: ignore[no-untyped-def]
    piece = bytes(range(250, 256)) * 20  # base64 full of '+' and '/'
    original = (body % style(piece).decode()).encode()
    segment = segment_of(JSON, original)
    assert segment.data == piece and segment.location == "json $.media"
    new = bytes(reversed(piece))
    assert segment.replace(new) == (body % style(new).decode()).encode()
