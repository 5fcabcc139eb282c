"""Byte-exact multipart splicing against bodies made by real clients, parsed back by a
real server parser (aiohttp's MultipartReader)."""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar
from unittest import mock

import aiohttp
import pytest
import requests
from aiohttp.streams import StreamReader
from grasp_sdk import multipart
from grasp_sdk.splice import MalformedBody, apply_edits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

JPEG_MAGIC = b"\xff\xd8\xff\xe0"
# Bytes that break naive parsers: CRLFs, dashes, header-like lines, a boundary prefix.
TRAPS = [b"\r\n", b"\r\n\r\n", b"--", b"\r\n--", b"\n", b"\r", b"Content-Type: x\r\n",
         b"\r\n--boundary", b"\x00", b"\xff\xd9"]

binary = st.lists(st.one_of(st.binary(max_size=24), st.sampled_from(TRAPS)),
                  max_size=8).map(b"".join)
# "_charset_" is the form's charset to a server (RFC 7578 §4.6), which aiohttp's reader, our
# oracle, reads apart: not a field of the tests' own.
field_name = st.text("abcdefghijklmnopqrstuvwxyz_[]0123456789", min_size=1,
                     max_size=10).filter(lambda name: name != "_charset_")
image_part = st.tuples(field_name, binary.map(lambda b: JPEG_MAGIC + b))
other_file = st.tuples(field_name, binary.map(lambda b: b"text:" + b))
text_field = st.tuples(field_name, st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20))


@st.composite
def form(draw: st.DrawFn) -> list[tuple[str, str, object]]:
    """A form: (kind, name, value) with at least one image part."""
    parts = draw(st.lists(st.one_of(
        image_part.map(lambda p: ("image", *p)),
        other_file.map(lambda p: ("file", *p)),
        text_field.map(lambda p: ("text", *p)),
    ), max_size=4))
    parts.insert(draw(st.integers(0, len(parts))), ("image", *draw(image_part)))
    return parts


async def aiohttp_body(parts: list[tuple[str, str, object]]) -> tuple[str, bytes]:
    data = aiohttp.FormData()
    for kind, name, value in parts:
        if kind == "text":
            data.add_field(name, value)
        else:
            data.add_field(name, value, filename=f"{name}.bin",
                           content_type="image/jpeg" if kind == "image" else "text/plain")
    payload = data()
    return payload.content_type, await payload.as_bytes()


def requests_body(parts: list[tuple[str, str, object]]) -> tuple[str, bytes]:
    files = [(name, (f"{name}.bin", value) if kind != "text" else (None, value))
             for kind, name, value in parts]
    prepared = requests.Request("POST", "http://127.0.0.1/", files=files).prepare()
    return prepared.headers["Content-Type"], prepared.body


async def server_parse(content_type: str, body: bytes) -> list[tuple[str | None, bytes]]:
    """Parse a multipart body the way an aiohttp server does: [(name, content)]."""
    stream = StreamReader(mock.Mock(_reading_paused=False), 2**16,
                          loop=asyncio.get_running_loop())
    stream.feed_data(body)
    stream.feed_eof()
    reader = aiohttp.MultipartReader({"Content-Type": content_type}, stream)
    parsed = []
    while (part := await reader.next()) is not None:
        parsed.append((part.name, bytes(await part.read(decode=False))))
    return parsed


async def check_splice(content_type: str, body: bytes, replacement: bytes) -> None:
    """Replace every image part; the server must see the new images and all else intact."""
    before = await server_parse(content_type, body)
    slots = multipart.find_images(body, content_type)
    assert [s.data for s in slots] == [c for _, c in before if c.startswith(JPEG_MAGIC)]
    new_images = [JPEG_MAGIC + replacement + bytes([i]) for i in range(len(slots))]
    edits = [e for slot, new in zip(slots, new_images, strict=True) for e in slot.edits(new)]
    new_body = apply_edits(body, edits)

    after = await server_parse(content_type, new_body)
    images = iter(new_images)
    assert after == [(name, next(images) if c.startswith(JPEG_MAGIC) else c)
                     for name, c in before]
    # Byte-exactness: outside the replaced spans, the bodies are identical.
    pos = new_pos = 0
    for edit, new in zip(sorted(edits), new_images, strict=True):
        assert new_body[new_pos:new_pos + edit.start - pos] == body[pos:edit.start]
        new_pos += edit.start - pos + len(new)
        pos = edit.end
    assert new_body[new_pos:] == body[pos:]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=form(), replacement=binary)
async def test_splice_aiohttp_formdata(parts: list, replacement: bytes) -> None:
    await check_splice(*await aiohttp_body(parts), replacement)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=form(), replacement=binary)
async def test_splice_requests(parts: list, replacement: bytes) -> None:
    await check_splice(*requests_body(parts), replacement)


# Legal near-misses of the boundary "XyZ": without the CRLF, or a prefix of it.
NEAR_MISSES = [b"--XyZ", b"--XyZ--", b"\r\n--Xy", b"\r\n-XyZ", b"--XyZ\r\n"]
near_miss_binary = st.lists(
    st.one_of(st.binary(max_size=8), st.sampled_from(NEAR_MISSES + TRAPS)), max_size=10,
).map(b"".join).filter(lambda b: b"\r\n--XyZ" not in b)


@settings(max_examples=60, deadline=None)
@given(contents=st.lists(near_miss_binary, min_size=1, max_size=3), replacement=near_miss_binary)
async def test_splice_with_boundary_near_misses(contents: list[bytes], replacement: bytes) -> None:
    writer = aiohttp.MultipartWriter("form-data", boundary="XyZ")
    for i, content in enumerate(contents):
        part = writer.append(JPEG_MAGIC + content if i % 2 == 0 else b"t" + content)
        part.set_content_disposition("form-data", name=f"f{i}", filename=f"f{i}.jpg")
    await check_splice(writer.content_type, await writer.as_bytes(), replacement)


class _Capture(http.server.BaseHTTPRequestHandler):
    captured: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.captured.append((self.headers["Content-Type"], body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def capture_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/upload"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(parts=form(), replacement=binary)
async def test_splice_curl(parts: list, replacement: bytes, capture_url: str,
                           tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("curl")
    args = ["curl", "-sS", "-H", "Expect:", "-o", "/dev/null"]
    for i, (kind, name, value) in enumerate(parts):
        path = Path(folder, f"part{i}")
        path.write_bytes(value if isinstance(value, bytes) else value.encode())
        # `<` sends a file's content as a plain field; `@` as a file upload.
        args += ["-F", f"{name}={'<' if kind == 'text' else '@'}{path}"]
    _Capture.captured.clear()
    await asyncio.to_thread(subprocess.run, [*args, capture_url], check=True, timeout=20)
    content_type, body = _Capture.captured[-1]
    await check_splice(content_type, body, replacement)


def test_replacement_holding_the_delimiter_is_refused() -> None:
    body = (b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n" + JPEG_MAGIC
            + b"\r\n--b--\r\n")
    (slot,) = multipart.find_images(body, "multipart/form-data; boundary=b")
    with pytest.raises(ValueError, match="delimiter"):
        slot.edits(JPEG_MAGIC + b"\r\n--b--\r\n")


def test_part_content_length_is_updated() -> None:
    body = (b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\nContent-Length: 6\r\n\r\n"
            + JPEG_MAGIC + b"xy\r\n--b--\r\n")
    (slot,) = multipart.find_images(body, "multipart/form-data; boundary=b")
    new = apply_edits(body, slot.edits(JPEG_MAGIC + b"longer"))
    assert b"Content-Length: 10\r\n" in new and new.endswith(JPEG_MAGIC + b"longer\r\n--b--\r\n")


def test_preamble_epilogue_and_padding_kept() -> None:
    body = (b"preamble\r\n--b  \r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n"
            + JPEG_MAGIC + b"\r\n--b--\r\nepilogue")
    (slot,) = multipart.find_images(body, 'multipart/form-data; boundary="b"')
    assert apply_edits(body, slot.edits(JPEG_MAGIC + b"!")) == body.replace(
        JPEG_MAGIC + b"\r\n--b--", JPEG_MAGIC + b"!\r\n--b--")


def test_empty_preamble_with_a_leading_crlf() -> None:
    body = (b"\r\n--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n" + JPEG_MAGIC
            + b"\r\n--b--")
    (slot,) = multipart.find_images(body, "multipart/form-data; boundary=b")
    assert slot.data == JPEG_MAGIC


def test_base64_text_part(jpeg: bytes) -> None:
    text = base64.b64encode(jpeg)
    body = (b"--b\r\nContent-Disposition: form-data; name=\"media_data\"\r\n\r\n" + text
            + b"\r\n--b--\r\n")
    (slot,) = multipart.find_images(body, "multipart/form-data; boundary=b")
    assert slot.data == jpeg and slot.media_type == "image/jpeg"
    new = apply_edits(body, slot.edits(jpeg + b"!"))
    assert new == body.replace(text, base64.b64encode(jpeg + b"!"))


def test_fields_filter_parts() -> None:
    body = (b"--b\r\nContent-Disposition: form-data; name=\"thumb\"\r\n\r\n" + JPEG_MAGIC
            + b"\r\n--b\r\nContent-Disposition: form-data; name=\"files[0]\"\r\n\r\n"
            + JPEG_MAGIC + b"\r\n--b--\r\n")
    slots = multipart.find_images(body, "multipart/form-data; boundary=b", ["files[*]"])
    assert [s.location for s in slots] == ["multipart part 'files[0]'"]


@pytest.mark.parametrize(("content_type", "body", "why"), [
    ("multipart/form-data", b"--b\r\n\r\nx\r\n--b--", "no boundary"),
    ("multipart/form-data; boundary=b", b"no delimiter at all", "no opening boundary"),
    ("multipart/form-data; boundary=b", b"--b\r\n\r\n\xff\xd8\xffunterminated",
     "no closing boundary"),
    ("multipart/form-data; boundary=b", b"--bjunk\r\n\r\nx\r\n--b--", "bad delimiter line"),
    ("multipart/form-data; boundary=b",
     b"--b\r\nContent-Disposition: x\r\n\xff\xd8\xff\r\n--b--", "no blank line"),
    ("multipart/form-data; boundary=other", b"--b\r\n\r\nx\r\n--b--", "no opening boundary"),
    ("multipart/form-data; boundary=b", b"--b\r\n\r\n\xff\xd8\xff\r\n--bob\r\n--b--",
     "bad delimiter line"),
])
def test_malformed_bodies_raise(content_type: str, body: bytes, why: str) -> None:
    with pytest.raises(MalformedBody, match=why):
        multipart.find_images(body, content_type)


def _json_part(name: str, document: bytes, extra: bytes = b"") -> bytes:
    return (b"--b\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nhi\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"" + name.encode() + b"\"\r\n"
            b"Content-Type: application/json\r\n" + extra + b"\r\n" + document + b"\r\n--b--\r\n")


def test_a_json_part_holding_a_base64_photo(jpeg: bytes) -> None:
    document = json.dumps({"kind": "avatar", "image": base64.b64encode(jpeg).decode()}).encode()
    body = _json_part("meta", b"\xef\xbb\xbf " + document)
    (slot,) = multipart.find_images(body, "multipart/form-data; boundary=b")
    assert slot.location == "multipart part 'meta' → json $.image" and slot.data == jpeg
    new = apply_edits(body, slot.edits(JPEG_MAGIC + b"new"))
    assert new == body.replace(base64.b64encode(jpeg), base64.b64encode(JPEG_MAGIC + b"new"))
    assert multipart.find_images(body, "multipart/form-data; boundary=b", ["image"])
    assert not multipart.find_images(body, "multipart/form-data; boundary=b", ["caption"])


def test_a_json_part_stating_its_length_is_not_read(jpeg: bytes) -> None:
    document = json.dumps({"image": base64.b64encode(jpeg).decode()}).encode()
    body = _json_part("meta", document, b"Content-Length: %d\r\n" % len(document))
    assert multipart.find_images(body, "multipart/form-data; boundary=b") == []
