"""Carriers of a known kind that may hold the original's pixels where no signature shows them:
comments and text (raw bytes, hex, base64), EXIF text and binary values, ICC profiles and
Photoshop resources."""

import base64
import io
import struct
import zlib

import numpy as np
import piexif
import pytest
from _media_builders import (
    encoded,
    exif_bytes,
    gradient,
    icc_profile,
    protect,
    segment,
    with_segments,
    xmp_packet,
)
from PIL import Image, PngImagePlugin

from grasp_guard.media import decode, encode, icc, xmp
from grasp_guard.media.jpeg_segments import split_header
from grasp_guard.media.png_chunks import Chunk, read_chunks
from grasp_guard.media.sniff import OPAQUE_BYTES_MAX, OpaqueAllowance, binary_bytes, encoded_runs
from grasp_guard.media.webp import read_chunks as webp_chunks

# a 32×24 preview of the photo, raw: no signature shows it
PREVIEW = np.asarray(Image.fromarray(gradient()).resize((32, 24))).tobytes()
PROSE = b"A portrait of my grandmother in the garden, summer 1987. " * 30
CJK = ("祖母の肖像、庭にて。" * 120).encode()  # 3600 bytes of UTF-8, none of it binary


def _round_trip(source: bytes) -> tuple[bytes, list[str]]:
    image = decode(source)
    return encode(image, protect(image.upright)), image.notes


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_the_preview_stand_in_is_binary_past_the_allowance() -> None:
    assert binary_bytes(PREVIEW) > OPAQUE_BYTES_MAX


@pytest.mark.parametrize("text", [
    PROSE, CJK, ("Photo prise à Montréal, l'été " * 30).encode("latin-1"),
    b" ".join(b"xmp.did:%032x" % i for i in range(60)),  # Photoshop's DocumentAncestors
    b"sha256:" + bytes(range(32)).hex().encode(),
    b"".join(b"<rdf:li>%d, %d</rdf:li>\n" % (i, i) for i in range(0, 256, 4)),  # a tone curve
    b'{"nodes": [' + b", ".join(b'{"id": %d, "pos": [%d, 200]}' % (i, 90 * i) for i in range(80)) + b"]}",
])  # fmt: skip
def test_writing_is_carried_as_it_is(text: bytes) -> None:
    assert OpaqueAllowance().readable(text) is text


@pytest.mark.parametrize("payload", [
    base64.b64encode(PREVIEW), base64.encodebytes(PREVIEW), base64.urlsafe_b64encode(PREVIEW),
    PREVIEW.hex().encode(), PREVIEW.hex(" ").encode(), PREVIEW.hex(":").encode(),
])  # fmt: skip
def test_hex_and_base64_runs_are_cut_from_text(payload: bytes) -> None:
    text = b"before " + payload + b" after"
    assert len(encoded_runs(text)) == 1
    left = OpaqueAllowance().readable(text)  # all but a wrapped run's short last line
    assert left.startswith(b"before ") and left.endswith(b" after") and len(left) < 64


def test_base64_broken_by_xml_line_references_or_short_lines_is_one_run() -> None:
    text = base64.b64encode(PREVIEW)
    adobe = b"&#xA;".join(text[i : i + 76] for i in range(0, len(text), 76))  # Adobe's XMP Toolkit
    short = b"\n".join(text[i : i + 40] for i in range(0, len(text), 40))
    for wrapped in (adobe, short):
        assert len(OpaqueAllowance().readable(b"x " + wrapped + b" y")) < 64


def test_the_allowance_is_shared_across_a_files_carriers() -> None:
    allowance, run = OpaqueAllowance(), PREVIEW[:400].hex().encode()  # 800 characters
    assert binary_bytes(PREVIEW[:900]) > OPAQUE_BYTES_MAX - len(run)
    assert allowance.readable(run) is run  # within 1 KB
    assert allowance.readable(run) == b""  # the second would pass it
    assert allowance.readable(PREVIEW[:900]) is None  # binary past what is left


def test_raw_pixels_are_binary_text() -> None:
    assert OpaqueAllowance().readable(PREVIEW) is None
    assert OpaqueAllowance().readable(PREVIEW[:500]) == PREVIEW[:500]  # a few hundred bytes fit


# JPEG


def _comments(data: bytes) -> list[bytes]:
    return [s.payload for s in split_header(data)[0] if s.marker == 0xFE]


def test_a_jpeg_comment_of_raw_pixels_is_dropped_and_one_of_writing_kept() -> None:
    source = with_segments(encoded(gradient(), "JPEG", quality=85),
                           segment(0xFE, PROSE), segment(0xFE, b"x" + PREVIEW))
    out, notes = _round_trip(source)
    assert _comments(out) == [PROSE]
    assert any("COM segment dropped: it holds binary data" in n for n in notes)


def test_hex_is_cut_from_a_jpeg_comment() -> None:
    source = with_segments(encoded(gradient(), "JPEG", quality=85),
                           segment(0xFE, b"preview: " + PREVIEW.hex().encode()))
    out, notes = _round_trip(source)
    assert _comments(out) == [b"preview: "]
    assert any("hex or base64 data cut from a COM segment" in n for n in notes)


def test_a_jpeg_profile_that_is_no_profile_is_dropped() -> None:
    fake = b"ICC_PROFILE\x00\x01\x01" + PREVIEW
    out, notes = _round_trip(with_segments(encoded(gradient(), "JPEG", quality=85), segment(0xE2, fake)))
    assert "icc_profile" not in _open(out).info and PREVIEW not in out
    assert any("ICC profile dropped: it does not read as one" in n for n in notes)


def test_a_jpeg_profile_with_bytes_no_tag_accounts_for_is_dropped() -> None:
    profile = icc_profile(600, b"desc")
    hidden = (len(profile) + len(PREVIEW)).to_bytes(4, "big") + profile[4:] + PREVIEW
    out, notes = _round_trip(encoded(gradient(), "JPEG", quality=85, icc_profile=hidden))
    assert "icc_profile" not in _open(out).info
    assert any(f"{len(PREVIEW) - 3} bytes in it belong to no registered tag" in n for n in notes)
    carried, _ = _round_trip(encoded(gradient(), "JPEG", quality=85, icc_profile=profile))
    assert _open(carried).info["icc_profile"] == profile


def test_exif_text_values_holding_pixels_are_blanked_and_others_kept() -> None:
    exif = piexif.dump({
        "0th": {piexif.ImageIFD.ImageDescription: b"Grandmother", piexif.ImageIFD.Make: b"GraspCam",
                piexif.ImageIFD.XPComment: tuple(PREVIEW.hex().encode("utf-16-le"))},
        "Exif": {piexif.ExifIFD.UserComment: b"ASCII\x00\x00\x00" + PREVIEW},
    })  # fmt: skip
    out, notes = _round_trip(encoded(gradient(), "JPEG", quality=85, exif=exif))
    tags = piexif.load(_open(out).info["exif"])
    assert tags["0th"][piexif.ImageIFD.ImageDescription] == b"Grandmother"
    assert tags["0th"][piexif.ImageIFD.Make] == b"GraspCam"
    assert tags["Exif"][piexif.ExifIFD.UserComment][8:] == bytes(len(PREVIEW))
    assert set(tags["0th"][piexif.ImageIFD.XPComment]) == {0}
    assert any("2 EXIF value(s) blanked" in n for n in notes)


def test_the_allowance_is_the_files_across_exif_blocks() -> None:
    # two EXIF blocks, each with 900 bytes of hex: the second's passes the file's 1 KB
    blocks = [piexif.dump({"0th": {piexif.ImageIFD.ImageDescription: PREVIEW[i : i + 450].hex().encode()}})
              for i in (0, 450)]
    source = with_segments(encoded(gradient(), "JPEG", quality=85), *(segment(0xE1, b) for b in blocks))
    out, notes = _round_trip(source)
    assert PREVIEW[450:900].hex().encode() not in out
    assert any("1 EXIF value(s) blanked" in n for n in notes)


def test_an_exif_comment_of_writing_is_kept() -> None:
    comment = b"UNICODE\x00" + ("祖母の肖像" * 100).encode("utf-16-be")
    exif = piexif.dump({"Exif": {piexif.ExifIFD.UserComment: comment}})
    out, notes = _round_trip(encoded(gradient(), "JPEG", quality=85, exif=exif))
    assert piexif.load(_open(out).info["exif"])["Exif"][piexif.ExifIFD.UserComment] == comment
    assert not any("blanked" in n for n in notes)


def test_hex_is_cut_from_an_xmp_property_and_the_rest_kept() -> None:
    packet = xmp_packet(b' xmp:Label="' + PREVIEW.hex().encode() + b'" xmp:Rating="4"')
    cleaned, removed = xmp.sanitize(packet)
    assert cleaned == packet.replace(PREVIEW.hex().encode(), b"")
    assert removed == ["hex or base64 data (it may be the original's pixels)"]


def test_control_bytes_drop_an_xmp_packet() -> None:
    packet = xmp_packet(b' xmp:Label="' + bytes(range(1, 32)) * 40 + b'"')
    assert xmp.sanitize(packet)[0] == b""


# PNG and WebP


def test_png_text_of_raw_pixels_is_dropped_and_base64_cut() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "portrait, detailed face\nSteps: 30, Sampler: Euler a, Seed: 42")
    info.add_text("Preview", PREVIEW.decode("latin-1"))
    info.add_text("Thumb", "b64:" + base64.b64encode(PREVIEW).decode(), zip=True)
    out, notes = _round_trip(encoded(gradient(), "PNG", pnginfo=info))
    text = _open(out).text
    assert text["parameters"].startswith("portrait") and "Preview" not in text
    assert text["Thumb"] == "b64:"
    assert any("'Preview' text dropped: it holds binary data" in n for n in notes)


def test_a_png_profile_that_is_no_profile_is_dropped() -> None:
    out, notes = _round_trip(encoded(gradient(), "PNG", icc_profile=PREVIEW))
    assert b"iCCP" not in [c.type for c in read_chunks(out)]
    assert zlib.compress(PREVIEW) not in out
    assert any("ICC profile dropped: it does not read as one" in n for n in notes)
    carried, _ = _round_trip(encoded(gradient(), "PNG", icc_profile=icc_profile()))
    assert _open(carried).info["icc_profile"] == icc_profile()


def test_a_webp_profile_that_is_no_profile_is_dropped() -> None:
    source = encoded(gradient(), "WEBP", quality=90, icc_profile=PREVIEW)
    out, notes = _round_trip(source)
    assert b"ICCP" not in [c.fourcc for c in webp_chunks(out)] and PREVIEW not in out
    assert any("ICC profile dropped" in n for n in notes)


# the profile check itself


def test_a_profile_reads_by_its_structure() -> None:
    profile = icc_profile(600, b"desc")
    assert icc.unaccounted(profile) == 0
    assert icc.unaccounted(profile + bytes(10)) == 10  # past its stated size
    assert icc.unaccounted(profile[:300]) is None  # shorter than it says
    assert icc.unaccounted(profile[:36] + b"xxxx" + profile[40:]) is None  # no acsp
    beyond = profile[:136] + (600).to_bytes(4, "big") + profile[140:]  # the tag starts at its end
    assert icc.unaccounted(beyond) is None
    shorter = profile[:140] + (100).to_bytes(4, "big") + profile[144:]  # 356 bytes in no tag
    assert icc.unaccounted(shorter) == 600 - 244 - 3


# Carriers a review found beyond the kinds above


def _png_with(*chunks: Chunk) -> bytes:
    """A PNG of the gradient with ``chunks`` right after its IHDR."""
    data = encoded(gradient(), "PNG")
    return data[:33] + b"".join(c.to_bytes() for c in chunks) + data[33:]


ORIGINAL = encoded(gradient(), "JPEG", quality=95)  # the photo itself, as a JPEG


def test_a_second_png_exif_chunk_is_dropped_with_the_thumbnail_it_holds() -> None:
    with_thumbnail = exif_bytes(1, thumbnail=ORIGINAL)[6:]
    out, notes = _round_trip(_png_with(Chunk(b"eXIf", exif_bytes(1)[6:]), Chunk(b"eXIf", with_thumbnail)))
    assert [c.type for c in read_chunks(out)].count(b"eXIf") == 1 and ORIGINAL not in out
    assert "a second eXIf chunk dropped (a PNG holds one)" in notes


@pytest.mark.parametrize("kind", [b"tIME", b"pHYs", b"gAMA", b"cHRM", b"sPLT"])
def test_a_known_png_chunk_longer_than_its_kind_is_dropped(kind: bytes) -> None:
    out, notes = _round_trip(_png_with(Chunk(kind, b"x\x00" + ORIGINAL)))
    assert ORIGINAL not in out and any(f"{kind.decode()} chunk dropped" in n for n in notes)
    kept, _ = _round_trip(_png_with(Chunk(b"pHYs", bytes(9)), Chunk(b"tIME", bytes(7))))
    assert {b"pHYs", b"tIME"} <= {c.type for c in read_chunks(kept)}


@pytest.mark.parametrize(("profile", "data"), [
    ("8bim", b"8BIM\x04\x00\x00\x00" + len(ORIGINAL).to_bytes(4, "big") + ORIGINAL),  # a resource holding it
    ("foo", PREVIEW),  # raw pixels, in hex
])  # fmt: skip
def test_an_imagemagick_raw_profile_holding_the_photo_loses_it(profile: str, data: bytes) -> None:
    info = PngImagePlugin.PngInfo()
    hexed = data.hex()
    info.add_text(f"Raw profile type {profile}", f"\n{profile}\n{len(data):8d}\n"
                  + "\n".join(hexed[i : i + 72] for i in range(0, len(hexed), 72)) + "\n", zip=True)
    out, notes = _round_trip(encoded(gradient(), "PNG", pnginfo=info))
    assert hexed[216:288] not in _open(out).text.get(f"Raw profile type {profile}", "")
    assert any("dropped" in n for n in notes)


@pytest.mark.parametrize("payload", [b"XMP\x00" + PREVIEW, b"JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x00\x00" + PREVIEW])
def test_jpeg_segments_of_known_kinds_keep_no_raw_pixels(payload: bytes) -> None:
    marker = 0xE1 if payload.startswith(b"XMP") else 0xE0
    out, _ = _round_trip(with_segments(encoded(gradient(), "JPEG", quality=85), segment(marker, payload)))
    assert PREVIEW not in out


def test_a_jfif_segment_stating_a_thumbnail_it_lacks_states_none() -> None:
    jfif = b"JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x10\x10"  # 16×16 stated, no pixels after
    out, _ = _round_trip(with_segments(encoded(gradient(), "JPEG", quality=85), segment(0xE0, jfif)))
    assert jfif not in out and jfif[:12] + b"\x00\x00" in out


def test_a_windows_comment_of_odd_length_is_read_as_text() -> None:
    comment = "祖母の肖像".encode("utf-16-le") + b"\x00\x00\x00"  # a writer's extra NUL
    exif = piexif.dump({"0th": {piexif.ImageIFD.XPComment: tuple(comment)}})
    out, notes = _round_trip(encoded(gradient(), "JPEG", quality=85, exif=exif))
    assert bytes(piexif.load(_open(out).info["exif"])["0th"][piexif.ImageIFD.XPComment]) == comment
    assert not any("blanked" in n for n in notes)


# Carriers a second review found: Photoshop resources, binary EXIF values, private ICC tags


def _resources(records: list[tuple[int, bytes]]) -> bytes:
    """A Photoshop resource stream of ``records`` (kind, data), without a name each."""
    return b"".join(b"8BIM" + kind.to_bytes(2, "big") + bytes(2) + len(data).to_bytes(4, "big")
                    + data + bytes(len(data) & 1) for kind, data in records)


def _iim(*datasets: tuple[int, int, bytes]) -> bytes:
    return b"".join(b"\x1c" + bytes((record, number)) + len(data).to_bytes(2, "big") + data
                    for record, number, data in datasets)


def _saved(pixels: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt)
    return out.getvalue()


SMALL = np.asarray(Image.fromarray(gradient()).resize((24, 18)))
TIFF = _saved(SMALL, "TIFF")  # uncompressed: its strip is the raw preview
BMP = _saved(SMALL, "BMP")
RESOLUTION = (0x03ED, bytes.fromhex("00480000000100010048000000010001"))  # 72 dpi: fixed-size


def test_a_photoshop_resource_of_unknown_data_past_the_allowance_is_dropped() -> None:
    kept = _resources([RESOLUTION])
    stream = _resources([RESOLUTION, (0x0FA0, PREVIEW)])  # a plug-in's: raw pixels
    source = with_segments(encoded(gradient(), "JPEG", quality=85),
                           segment(0xED, b"Photoshop 3.0\x00" + stream))
    out, notes = _round_trip(source)
    assert [s.payload for s in split_header(out)[0] if s.marker == 0xED] == [b"Photoshop 3.0\x00" + kept]
    assert f"Photoshop resource 0x0FA0 dropped: its {len(PREVIEW)} bytes may be the original's pixels" in notes


def test_photoshops_own_resources_are_kept_whatever_their_size() -> None:
    # a "Save As JPEG" writes version info, print info and style, grid, slices and paths:
    # settings, kilobytes of them, no pixels
    own = [RESOLUTION, (0x0421, b"\x00\x00\x00\x01\x01" + "Adobe Photoshop".encode("utf-16-be") * 4),
           (0x043A, bytes(range(256)) * 4), (0x043B, bytes(range(200)) * 3),
           (0x0408, bytes(16)), (0x041A, bytes(range(128)) * 6), (0x07D0, bytes(26) * 40)]
    stream = _resources(own)
    source = with_segments(encoded(gradient(), "JPEG", quality=85),
                           segment(0xED, b"Photoshop 3.0\x00" + stream))
    out, notes = _round_trip(source)
    assert [s.payload for s in split_header(out)[0] if s.marker == 0xED] == [b"Photoshop 3.0\x00" + stream]
    assert not [n for n in notes if "Photoshop" in n]


def test_iptc_preview_datasets_are_removed_and_the_rest_kept() -> None:
    caption = (2, 120, b"Grandmother in the garden")
    iim = _iim((2, 0, b"\x00\x04"), caption, (2, 200, b"\x00\x05"), (2, 201, b"\x00\x01"), (2, 202, TIFF))
    source = with_segments(encoded(gradient(), "JPEG", quality=85),
                           segment(0xED, b"Photoshop 3.0\x00" + _resources([(0x0404, iim)])))
    out, notes = _round_trip(source)
    kept = _resources([(0x0404, _iim((2, 0, b"\x00\x04"), caption))])
    assert [s.payload for s in split_header(out)[0] if s.marker == 0xED] == [b"Photoshop 3.0\x00" + kept]
    assert "IPTC preview (datasets 2:200–2:202) removed" in notes


def test_a_png_raw_photoshop_profile_loses_its_unknown_resource() -> None:
    stream = _resources([RESOLUTION, (0x0FA0, PREVIEW)])
    hexed = stream.hex()
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type 8bim", f"\n8bim\n{len(stream):8d}\n"
                  + "\n".join(hexed[i : i + 72] for i in range(0, len(hexed), 72)) + "\n", zip=True)
    out, notes = _round_trip(encoded(gradient(), "PNG", pnginfo=info))
    text = _open(out).text["Raw profile type 8bim"].split()
    assert bytes.fromhex("".join(text[2:])) == _resources([RESOLUTION])
    assert any("Photoshop resource 0x0FA0 dropped" in n for n in notes)


@pytest.mark.parametrize("note", [PREVIEW, b"Kodak\x00" + TIFF, BMP])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_maker_note_of_raw_pixels_or_a_tiff_or_bmp_file_is_blanked(note: bytes, fmt: str) -> None:
    out, notes = _round_trip(encoded(gradient(), fmt, exif=exif_bytes(maker_note=note)))
    tags = piexif.load(_open(out).info["exif"])
    assert PREVIEW not in out and SMALL.tobytes()[:600] not in out
    assert tags["Exif"][piexif.ExifIFD.MakerNote] == bytes(len(note))  # blanked in place
    assert tags["0th"][piexif.ImageIFD.Make] == b"GraspCam"
    assert any("blanked" in n for n in notes)


def test_a_maker_note_laid_out_as_vendors_write_theirs_is_kept_whole() -> None:
    # Nikon's layout: a header, its own TIFF header, a directory whose values follow it
    values = bytes(range(256)) * 8  # 2 KB of binary camera data
    directory = struct.pack(">H", 2) + struct.pack(">HHII", 0x0001, 7, 4, 0x30303230)
    directory += struct.pack(">HHII", 0x0091, 7, len(values), 8 + 2 + 24 + 4) + bytes(4)
    note = b"Nikon\x00\x02\x10\x00\x00MM\x00*\x00\x00\x00\x08" + directory + values
    out, notes = _round_trip(encoded(gradient(), "JPEG", quality=85, exif=exif_bytes(maker_note=note)))
    assert piexif.load(_open(out).info["exif"])["Exif"][piexif.ExifIFD.MakerNote] == note
    assert not any("blanked" in n for n in notes)


def test_an_undefined_exif_value_of_raw_pixels_is_blanked() -> None:
    exif = piexif.dump({"Exif": {piexif.ExifIFD.DeviceSettingDescription: PREVIEW,
                                 piexif.ExifIFD.ExifVersion: b"0232"}})
    out, notes = _round_trip(encoded(gradient(), "JPEG", quality=85, exif=exif))
    tags = piexif.load(_open(out).info["exif"])["Exif"]
    # piexif writes the value where a next-directory pointer would be: those 4 bytes are kept
    assert tags[piexif.ExifIFD.DeviceSettingDescription][4:] == bytes(len(PREVIEW) - 4)
    assert tags[piexif.ExifIFD.ExifVersion] == b"0232"
    assert "1 EXIF value(s) blanked: binary, hex or base64 data in them may be the original's pixels" in notes


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_profile_with_a_private_tag_past_the_allowance_is_dropped(fmt: str) -> None:
    private = icc_profile(144 + len(PREVIEW))
    private = private[:144] + PREVIEW
    out, notes = _round_trip(encoded(gradient(), fmt, icc_profile=private))
    assert "icc_profile" not in _open(out).info and PREVIEW not in out
    assert f"ICC profile dropped: {len(PREVIEW) - 3} bytes in it belong to no registered tag" in notes
    registered = icc_profile(144 + len(PREVIEW), b"A2B0")  # a LUT's: colour, carried unchecked
    carried, _ = _round_trip(encoded(gradient(), fmt, icc_profile=registered))
    assert _open(carried).info["icc_profile"] == registered
