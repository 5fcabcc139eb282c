"""Magic-byte recognition and whole-image checks."""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.parse
from collections.abc import Callable

import numpy as np
import pytest
from grasp_sdk.sniff import carries_image, image_type, is_complete
from PIL import Image


def _bmff(*boxes: tuple[bytes, bytes]) -> bytes:
    return b"".join((8 + len(payload)).to_bytes(4, "big") + kind + payload
                    for kind, payload in boxes)


HEIC = _bmff((b"ftyp", b"heic\x00\x00\x00\x00mif1heic"), (b"meta", b"\x00" * 20))
AVIF = _bmff((b"ftyp", b"avif\x00\x00\x00\x00avifmif1"), (b"mdat", b"\x01" * 9))
HEIF_AVIF_COMPAT = _bmff((b"ftyp", b"mif1\x00\x00\x00\x00mif1avif"))


@pytest.mark.parametrize(("fmt", "expected"), [
    ("JPEG", "image/jpeg"), ("PNG", "image/png"), ("GIF", "image/gif"), ("WEBP", "image/webp"),
])
def test_image_type_of_real_images(make_image, fmt: str, expected: str) -> None:
    assert image_type(make_image(fmt)) == expected


@pytest.mark.parametrize(("data", "expected"), [
    (HEIC, "image/heic"),
    (AVIF, "image/avif"),
    (HEIF_AVIF_COMPAT, "image/avif"),
    (_bmff((b"ftyp", b"mif1\x00\x00\x00\x00mif1")), "image/heif"),
    (_bmff((b"ftyp", b"isom\x00\x00\x00\x00mp41")), None),  # an MP4 video
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
    (b"\xff\xd8", None),
    (b"", None),
    (b'{"a": 1}', None),
])
def test_image_type(data: bytes, expected: str | None) -> None:
    assert image_type(data) == expected


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_whole_images_are_complete_and_pieces_are_not(make_image, fmt: str) -> None:
    data = make_image(fmt, size=(64, 48), noise=True)
    kind = image_type(data)
    assert kind is not None and is_complete(data, kind)
    assert not is_complete(data[: len(data) * 2 // 3], kind)


def test_bmff_pieces() -> None:
    assert is_complete(HEIC, "image/heic")
    assert not is_complete(HEIC[:-5], "image/heic")


def test_jpeg_thumbnail_eoi_does_not_count(make_image) -> None:
    """An EXIF thumbnail ends with FFD9 early on; a truncated main image is still a piece."""
    thumb = make_image("JPEG", size=(8, 8))
    data = make_image("JPEG", size=(128, 128), noise=True)
    # Splice a thumbnail-bearing APP1 segment after SOI.
    app = b"Exif\x00\x00" + thumb
    data = data[:2] + b"\xff\xe1" + (len(app) + 2).to_bytes(2, "big") + app + data[2:]
    assert data.index(b"\xff\xd9") < len(data) // 2
    assert is_complete(data, "image/jpeg")
    assert not is_complete(data[: len(data) - 200], "image/jpeg")


def test_what_follows_a_jpeg_must_be_whole_too(make_image) -> None:
    """An MPO's frames, a gain map or a motion photo's video after the image: a piece cut
    past the first EOI is still a piece; an unknown trailer (padding, a vendor's) is not."""
    frames = [Image.new("RGB", (32, 24), c) for c in ("red", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "MPO", save_all=True, append_images=frames[1:])
    mpo = out.getvalue()
    second = mpo.index(b"\xff\xd8\xff", 2)
    photo = make_image("JPEG", size=(32, 24))
    motion = photo + _bmff((b"ftyp", b"mp42\x00\x00\x00\x00mp42isom"), (b"mdat", bytes(4000)))
    for whole in (mpo, motion, photo + bytes(10), photo + b"SEFHjunkSEFT"):
        assert is_complete(whole, "image/jpeg")
    for piece in (mpo[:second + 2], mpo[:second + 200], mpo[:-1], motion[:len(photo) + 100]):
        assert not is_complete(piece, "image/jpeg")


def _photo(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 40, 10)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
@pytest.mark.parametrize(
    "wrap",
    [
        lambda b: b"--x\r\n\r\n" + b + b"\r\n--x--",
        lambda b: b'{"photo": "' + base64.b64encode(b) + b'"}',
        lambda b: b"photo=" + urllib.parse.quote(base64.b64encode(b)).encode(),
        lambda b: b"photo="
        + urllib.parse.quote(base64.b64encode(b)).replace("%2F", "%2f").replace("%2B", "%2b").encode(),
        lambda b: b"p=" + base64.urlsafe_b64encode(b),
        lambda b: b'{"photo": "' + base64.b64encode(b).replace(b"/", b"\\/") + b'"}',  # PHP
    ],
    ids=["raw", "base64", "percent", "percent-lower", "urlsafe", "json-escaped"],
)
def test_an_image_is_found_raw_or_base64_anywhere(fmt: str, wrap: Callable[[bytes], bytes]) -> None:
    assert carries_image(wrap(_photo(fmt)))


def test_heif_brands_are_found_raw_and_base64() -> None:
    head = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
    assert carries_image(b"x" + head) and carries_image(base64.b64encode(head))


@pytest.mark.parametrize(
    "body",
    [b"", b"hello", b'{"bio": "/9J/ is not it"}', b"\xff\xd8\xff\x00\x01",
     b"RIFF\x00\x00\x00\x00WAVE", b'{"session": "kq3Zx/9j/abcdEFGH"}',
     b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(600)],  # a length that ends on no marker
)
def test_bodies_without_an_image(body: bytes) -> None:
    assert not carries_image(body)


def test_a_jpeg_with_fill_bytes_after_its_soi_is_found() -> None:
    jpeg = _photo("JPEG")
    assert carries_image(b"--x\r\n" + jpeg[:2] + b"\xff" + jpeg[2:])


def test_chance_does_not_make_an_image() -> None:
    # a video past max_bytes on a block site must not be refused for three lucky bytes
    noise = np.random.default_rng(0).integers(0, 256, 8_000_000, dtype=np.uint8).tobytes()
    seeded = noise[:4_000_000] + b"\xff\xd8\xff\xe1" + noise[4_000_000:]
    assert not carries_image(seeded)
    for offset in range(3):  # its base64 with the SOI at each offset into a 3-byte group
        assert not carries_image(base64.b64encode(bytes(offset) + seeded))


def test_a_body_of_countless_jpeg_starts_is_taken_to_carry_one() -> None:
    # each would cost a look of up to 1 KB: past 4096 of them, doubt refuses, at once
    assert not carries_image(b"/9j/ " * 4096) and carries_image(b"/9j/ " * 4097)
    assert carries_image(b"\xff\xd8\xff\x00" * 4097)
    started = time.perf_counter()
    assert carries_image(b"/9j/" * 1_000_000)
    assert time.perf_counter() - started < 2


def _first_segments_dropped(jpeg: bytes) -> bytes:
    """``jpeg`` without its APPn and COM segments before the first table: DQT comes first,
    as after ``exiftool -all=`` and in many encoders' output."""
    i = 2
    while jpeg[i + 1] == 0xFE or 0xE0 <= jpeg[i + 1] <= 0xEF:
        i += 2 + int.from_bytes(jpeg[i + 2:i + 4], "big")
    return jpeg[:2] + jpeg[i:]


def _segment_first(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    length = (len(payload) + 2).to_bytes(2, "big")
    return jpeg[:2] + bytes([0xFF, marker]) + length + payload + jpeg[2:]


def _lines(text: bytes, width: int, sep: bytes) -> bytes:
    return sep.join(text[i:i + width] for i in range(0, len(text), width))


def test_base64_broken_into_lines_is_read_across_them() -> None:
    # the header's end (DQT's 67 bytes, 90 characters) lies past the first line
    dqt_first = _first_segments_dropped(_photo("JPEG"))
    b64 = base64.b64encode(dqt_first)
    for body in [
        base64.encodebytes(dqt_first),  # MIME: 76 characters a line, LF
        b"--b\r\nContent-Transfer-Encoding: base64\r\n\r\n" + _lines(b64, 76, b"\r\n"),
        b"-----BEGIN IMAGE-----\n" + _lines(b64, 64, b"\n") + b"\n-----END IMAGE-----",  # PEM
        json.dumps({"img": _lines(b64, 76, b"\n").decode()}).encode(),  # JSON: '\n' escaped
        json.dumps({"img": _lines(b64, 76, b"\r\n").decode()}).encode(),  # '\r\n' escaped
        b"photo=" + urllib.parse.quote(base64.encodebytes(dqt_first)).encode(),  # '%0A'
    ]:
        assert carries_image(body), body[:100]
    noise = np.random.default_rng(1).integers(0, 256, 1_000_000, dtype=np.uint8).tobytes()
    assert not carries_image(base64.encodebytes(noise))


def test_a_jpeg_whose_first_segment_is_long_is_found() -> None:
    jpeg = _photo("JPEG")
    dqt = _first_segments_dropped(jpeg)
    tables = dqt[:2] + b"\xff\xdb" + (2 + 4 * 129).to_bytes(2, "big") + b"".join(
        bytes([0x10 | n]) + bytes(range(128)) for n in range(4)) + dqt[2:]  # four 16-bit tables
    comment = _segment_first(jpeg, 0xFE, b"c" * 598)  # a 600-byte COM
    long_comment = _segment_first(jpeg, 0xFE, b"Made with a camera app. " * 200)  # past any window
    for found in (tables, comment, long_comment):
        for body in (b"--x\r\n\r\n" + found, base64.b64encode(found), base64.encodebytes(found)):
            assert carries_image(body), body[:40]
    binary = _segment_first(jpeg, 0xFE, bytes(4800))  # a COM too long to see the end of: not text
    assert not carries_image(b"--x\r\n\r\n" + binary[:3000])
    assert not carries_image(base64.b64encode(binary))
    assert carries_image(b"--x\r\n\r\n" + binary)  # raw, its end is seen past the window
    assert not carries_image(long_comment[:18])  # 12 bytes of it seen: too few to tell text


def test_every_jpeg_start_is_looked_at_even_one_overlapping_another() -> None:
    jpeg = _photo("JPEG")
    b64 = base64.b64encode(jpeg)
    for body in [
        b"--x\r\n\r\n\xff\xd8" + jpeg,  # a stray SOI's first bytes before the photo
        b'{"photo": "/9j' + b64 + b'"}',  # '/9j' just before '/9j/4AAQ'
        b'{"photo": "\\/9j' + b64.replace(b"/", b"\\/") + b'"}',
        b"photo=%2F9j" + urllib.parse.quote(b64).encode(),
        b"p=_9j" + base64.urlsafe_b64encode(jpeg),
    ]:
        assert carries_image(body), body[:40]


def _grpc_web_text(image: bytes, lead: int) -> bytes:
    """``image`` as a bytes field of a protobuf message in a gRPC-web text frame, base64 as a
    whole: after ``lead`` bytes of other fields, the image starts at any byte of a group."""
    message = b"\x12" + bytes([lead]) + bytes(lead) + b"\x0a" + _varint(len(image)) + image
    return base64.b64encode(b"\x00" + len(message).to_bytes(4, "big") + message)


def _varint(n: int) -> bytes:
    return bytes([n & 0x7F | 0x80, n >> 7]) if n >= 0x80 else bytes([n])


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "HEIC"])
@pytest.mark.parametrize("offset", [1, 2])
def test_base64_of_an_image_at_any_byte_of_a_group_is_found(fmt: str, offset: int) -> None:
    # a base64'd container (gRPC-web text, a msgpack or CBOR field) puts the image anywhere
    image = HEIC if fmt == "HEIC" else _photo(fmt)
    data = bytes(range(1, 1 + offset)) + image  # the image starts `offset` bytes into a group
    b64 = base64.b64encode(data)
    for body in [
        b64,
        base64.urlsafe_b64encode(data),
        b"photo=" + urllib.parse.quote(b64).encode(),
        b'{"photo": "' + b64.replace(b"/", b"\\/") + b'"}',
        base64.encodebytes(bytes(57) + data),  # MIME, the image on the second line
        json.dumps({"img": _lines(b64, 76, b"\r\n").decode()}).encode(),
    ]:
        assert carries_image(body), body[:60]
    for lead in range(3):  # the image at each of the three offsets into a group
        assert carries_image(_grpc_web_text(image, lead))


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\\n", b"\\r\\n", b"%0A", b"%0d%0a"],
                         ids=["LF", "CRLF", "json-LF", "json-CRLF", "percent-LF", "percent-CRLF"])
def test_a_base64_image_start_split_by_a_line_break_is_found(newline: bytes) -> None:
    # a line ends anywhere: in an SOI's or a signature's symbols too, at any offset
    for fmt in ("JPEG", "PNG", "GIF"):
        for offset in range(3):
            b64 = base64.b64encode(bytes(offset) + _photo(fmt))
            for at in range(1, 12):
                body = b64[:at] + newline + b64[at:]
                assert carries_image(body), (fmt, offset, body[:24])


def test_jpeg_starts_at_any_offset_count_toward_the_doubt_rule() -> None:
    # "P/Y/8" and "D/2P/": the base64 of an SOI 1 and 2 bytes into a group (26 bits each)
    assert not carries_image(b"P/Y/8 " * 4096) and carries_image(b"P/Y/8 " * 4097)
    assert not carries_image(b"/9j/ " * 2048 + b"D/2P/ " * 2048)
    assert carries_image(b"/9j/ " * 2048 + b"D/2P/ " * 2049)
    assert not carries_image(b"A/Y/8 " * 4097)  # the symbol before does not hold the SOI's bits


@pytest.mark.parametrize("text", ["富士山の写真。撮影：山田太郎\n", "Ünïcödé çømmënt\t", "😀 emoji "],
                         ids=["japanese", "latin", "emoji"])
def test_a_long_comment_in_utf8_is_text(text: str) -> None:
    jpeg = _photo("JPEG")
    for lead in ("", "x", "xy"):  # the window ends within a character, or not
        found = _segment_first(jpeg, 0xFE, (lead + text * 400).encode())
        for body in (b"--x\r\n\r\n" + found, base64.b64encode(found),
                     base64.b64encode(b"\x01" + found)):
            assert carries_image(body), (lead, body[:40])
    for bad in ("\x01", "\x7f", "\x85"):  # control characters: C0, DEL, C1
        found = _segment_first(jpeg, 0xFE, (text * 20 + bad + text * 400).encode())
        assert not carries_image(b"--x\r\n\r\n" + found[:3000])  # its end not seen
        assert not carries_image(base64.b64encode(found))
    invalid = _segment_first(jpeg, 0xFE, text.encode() * 20 + b"\xff" + text.encode() * 400)
    assert not carries_image(b"--x\r\n\r\n" + invalid[:3000])


@pytest.mark.parametrize("name", [b"JP\x00\x01\x00\x00\x00\x01", b"MPF\x00"])
def test_a_jpeg_whose_first_segment_is_a_long_binary_named_appn_is_found(name: bytes) -> None:
    # C2PA's JUMBF (APP11) or an MPF (APP2) first, longer than any window
    jpeg = _photo("JPEG")
    marker = 0xEB if name.startswith(b"JP") else 0xE2
    found = _segment_first(jpeg, marker, name + bytes(range(256)) * 40)
    for body in (b"--x\r\n\r\n" + found, found + b"\r\n--x--", base64.b64encode(found)):
        assert carries_image(body), body[:40]
    assert carries_image(found[:3000])  # cut before the segment's end: its name says JPEG
    assert not carries_image(_segment_first(jpeg, marker, bytes(12000))[:3000])


@pytest.mark.parametrize("dumps", [
    lambda data: json.dumps({"photo": list(data)}),
    lambda data: json.dumps({"photo": [b - 256 if b > 127 else b for b in data]}),  # Gson
    lambda data: json.dumps({"photo": list(data)}, indent=8),
])
def test_a_photo_as_json_byte_values_is_found(dumps: Callable[[bytes], str]) -> None:
    assert carries_image(dumps(_photo("JPEG")).encode())
    assert carries_image(dumps(_photo("PNG")).encode())
    assert not carries_image(json.dumps({"scores": list(range(300))}).encode())
    assert not carries_image(json.dumps({"big": [255, 216, 255] + [999] * 20}).encode())
    # in a form, percent-encoded, as URLSearchParams writes it
    form = urllib.parse.urlencode({"photo": json.dumps(list(_photo("JPEG")))}).encode()
    assert carries_image(form) and b"%5B255%2C" in form
    assert not carries_image(urllib.parse.urlencode({"n": json.dumps(list(range(300)))}).encode())


def _binary_string(data: bytes) -> str:
    return data.decode("latin-1")  # FileReader.readAsBinaryString: a byte a character


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
@pytest.mark.parametrize(
    "wrap",
    [
        lambda b: b"caption=me&photo=" + urllib.parse.quote_from_bytes(b).encode(),  # requests
        lambda b: json.dumps({"photo": _binary_string(b)}, ensure_ascii=False).encode(),
        lambda b: json.dumps({"photo": _binary_string(b)}).encode(),  # \u00ff escapes
        lambda b: b"photo=" + urllib.parse.quote(_binary_string(b)).encode(),  # encodeURIComponent
        lambda b: json.dumps({"photo": base64.b64encode(b).decode()}).encode("utf-16"),
        lambda b: json.dumps({"photo": base64.b64encode(b).decode()}).encode("utf-16-le"),
        lambda b: json.dumps({"photo": base64.b64encode(b).decode()}).encode("utf-32-be"),
        lambda b: json.dumps({"avatar": "\\x" + b.hex()}).encode(),  # Postgres bytea
        lambda b: json.dumps({"photo": b.hex().upper()}).encode(),
        lambda b: json.dumps({"photo": {str(i): v for i, v in enumerate(b)}}).encode(),
        lambda b: json.dumps({"photo": {str(i): v for i, v in enumerate(b)}}, indent=2).encode(),
        lambda b: json.dumps({"payload": json.dumps(  # PHP: json_encode's \/ inside JSON
            {"photo": base64.b64encode(b).decode()}).replace("/", "\\/")}).encode(),
        lambda b: json.dumps({"payload": json.dumps({"inner": json.dumps(
            {"photo": base64.b64encode(b).decode()}).replace("/", "\\/")})}).encode(),
        lambda b: json.dumps({"payload": json.dumps(  # PHP throughout: \\\/
            {"photo": base64.b64encode(b).decode()}).replace("/", "\\/")}).replace(
            "/", "\\/").encode(),
    ],
    ids=["percent-bytes", "binary-string", "binary-string-escaped", "binary-string-percent",
         "utf-16", "utf-16-le", "utf-32-be", "bytea-hex", "hex-upper", "typed-array-object",
         "typed-array-object-indented", "json-in-json", "json-in-json-in-json",
         "json-in-json-php"],
)
def test_an_image_is_found_as_bytes_written_as_text(fmt: str,
                                                    wrap: Callable[[bytes], bytes]) -> None:
    assert carries_image(wrap(_photo(fmt)))


@pytest.mark.parametrize(
    "body",
    [json.dumps({"colour": "#ffd8ff", "name": "Zoë"}, ensure_ascii=False).encode(),
     json.dumps({"bio": "Chloé à Orléans"}).encode("utf-16"),
     b"q=%C3%A9t%C3%A9&hash=ffd8ff00aa", json.dumps({"ids": {"0": 1, "1": 2}}).encode(),
     "ÿØÿ is three letters".encode()],
)
def test_text_that_only_looks_like_written_bytes(body: bytes) -> None:
    assert not carries_image(body)


def test_written_bytes_are_read_only_where_they_may_be() -> None:
    # a design file's colour, however often (each start counted toward the doubt limit
    # refused one of 4097 of them), and a video read as UTF-32 (its box size 00 00 00 18)
    # or JSON unescaped: copies that only cost time
    from grasp_sdk import sniff

    assert not carries_image(json.dumps({"fills": ["#ffd8ff"] * 5000}).encode())
    video = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2" + bytes(range(256)) * 64
    assert sniff._wide_text_as_utf8(video) is None
    assert sniff._json_unescaped(b'{"path": "C:\\\\Users\\\\me"}') is None
