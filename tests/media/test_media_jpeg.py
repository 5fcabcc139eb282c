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
    exif_dict,
    gradient,
    icc_profile,
    protect,
    segment,
    thumbnail_jpeg,
    tiff_block,
    with_segments,
    xmp_packet,
)
from PIL import Image, JpegImagePlugin

from grasp_guard.errors import SizeBudgetError
from grasp_guard.media import decode, encode, exif
from grasp_guard.media.jpeg_segments import split_header
from grasp_guard.media.orientation import to_stored

XMP = xmp_packet(b' xmp:Rating="4"')


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _round_trip(source: bytes, size_mode: str = "any") -> tuple[bytes, np.ndarray]:
    image = decode(source)
    protected = protect(image.upright)
    return encode(image, protected, size_mode=size_mode), protected


def _app_payloads(data: bytes, marker: int) -> list[bytes]:
    return [s.payload for s in split_header(data)[0] if s.marker == marker]


@pytest.mark.parametrize("subsampling", [0, 1, 2])
@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("quality", [50, 92])
def test_tables_subsampling_and_progression_are_kept(
    subsampling: int, progressive: bool, quality: int
) -> None:
    source = encoded(
        gradient(), "JPEG", quality=quality, subsampling=subsampling, progressive=progressive
    )
    out, protected = _round_trip(source)
    before, after = _open(source), _open(out)
    assert after.quantization == before.quantization
    assert JpegImagePlugin.get_sampling(after) == subsampling
    assert bool(after.info.get("progressive")) is progressive
    assert np.abs(np.asarray(after).astype(int) - protected).mean() < 6


def test_greyscale_stays_greyscale() -> None:
    source = encoded(gradient()[:, :, 0], "JPEG", quality=80)
    image = decode(source)
    assert image.upright.shape == (48, 64, 3)
    out = encode(image, protect(image.upright))
    after = _open(out)
    assert after.mode == "L" and after.quantization == _open(source).quantization


def test_metadata_is_carried_byte_identical() -> None:
    icc = icc_profile(70_000, b"A2B0")  # spans two APP2 segments
    source = encoded(
        gradient(),
        "JPEG",
        quality=85,
        exif=exif_bytes(1, thumbnail_jpeg()),
        icc_profile=icc,
        xmp=XMP,
        comment=b"a comment",
        dpi=(300, 300),
    )
    source = with_segments(
        source, segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01"), segment(0xE9, b"vendor data")
    )
    out, _ = _round_trip(source)
    before, after = _open(source), _open(out)
    for key in ("icc_profile", "xmp", "comment", "dpi", "jfif_version", "adobe", "adobe_transform"):
        assert after.info.get(key) == before.info.get(key), key
    assert after.info["icc_profile"] == icc and after.info["xmp"] == XMP
    assert [s.marker for s in split_header(out)[0] if s.is_metadata] == [
        s.marker for s in split_header(source)[0] if s.is_metadata
    ]
    for marker in (0xE0, 0xE2, 0xE9, 0xEE, 0xFE):
        assert _app_payloads(out, marker) == _app_payloads(source, marker)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_tags_are_kept_and_the_thumbnail_regenerated(orientation: int) -> None:
    original_thumb = thumbnail_jpeg((0, 200, 0))
    reference = gradient()
    stored = np.ascontiguousarray(to_stored(reference, orientation))
    source = encoded(stored, "JPEG", quality=90, exif=exif_bytes(orientation, original_thumb))
    image = decode(source)
    assert image.orientation == orientation
    assert np.abs(image.upright.astype(int) - reference).mean() < 3
    out = encode(image, protect(image.upright))
    assert _open(out).size == _open(source).size  # stored geometry kept
    before, after = piexif.load(source), piexif.load(out)
    for ifd in ("0th", "Exif", "GPS", "Interop"):
        assert after[ifd] == before[ifd], ifd
    assert after["0th"][piexif.ImageIFD.Orientation] == orientation
    assert after["thumbnail"] != before["thumbnail"] and before["thumbnail"] not in out
    thumb = np.asarray(_open(after["thumbnail"]).convert("RGB")).astype(int)
    protected_stored = to_stored(protect(reference), orientation).astype(int)
    expected = np.asarray(
        Image.fromarray(protected_stored.astype(np.uint8)).resize(thumb.shape[1::-1])
    ).astype(int)
    assert np.abs(thumb - expected).mean() < 20  # shows the protected pixels


def test_exif_piexif_cannot_load_is_handled_raw() -> None:
    original_thumb = thumbnail_jpeg()
    block = tiff_block(6, original_thumb)
    source = encoded(to_stored(gradient(), 6).copy(), "JPEG", quality=90, exif=exif.PREFIX + block)
    with pytest.raises(ValueError):
        piexif.load(source)
    image = decode(source)
    assert image.orientation == 6
    out = encode(image, protect(image.upright))
    assert original_thumb not in out
    new_block = _app_payloads(out, 0xE1)[0][len(exif.PREFIX) :]
    start = block.index(original_thumb)
    assert new_block[: start - 20] == block[: start - 20]  # IFD0, Exif IFD and values untouched
    layout = exif.parse(new_block)
    assert layout.orientation == 6 and _open(new_block[slice(*layout.thumbnail)]).size == (9, 12)


def test_unreadable_exif_is_dropped_with_a_note() -> None:
    source = with_segments(encoded(gradient(), "JPEG"), segment(0xE1, exif.PREFIX + b"not a tiff"))
    image = decode(source)
    assert any("unreadable EXIF" in n for n in image.notes)
    assert not any(
        p.startswith(exif.PREFIX) for p in _app_payloads(encode(image, image.upright), 0xE1)
    )


def _photoshop(resources: list[tuple[int, bytes]]) -> bytes:
    body = b"Photoshop 3.0\x00"
    for rid, data in resources:
        body += (
            b"8BIM"
            + struct.pack(">H", rid)
            + b"\x00\x00"
            + struct.pack(">I", len(data))
            + data
            + b"\x00" * (len(data) & 1)
        )
    return body


def test_image_carrying_segments_are_dropped_or_cleaned() -> None:
    thumb = thumbnail_jpeg()
    jfif_thumb = b"JFIF\x00\x01\x02\x01\x00\x48\x00\x48\x02\x01" + bytes(6)
    iptc = b"\x1c\x02\x78\x00\x05hello"
    source = encoded(gradient(), "JPEG", quality=80)
    source = source[:2] + segment(0xE0, jfif_thumb) + source[2 + 18 :]
    source = (
        with_segments(
            source,
            segment(0xE0, b"JFXX\x00\x10" + thumb),
            segment(0xE1, b"http://ns.adobe.com/xmp/extension/\x00" + b"0" * 40 + b"GImage data"),
            segment(
                0xE1,
                b"http://ns.adobe.com/xap/1.0/\x00"
                + xmp_packet(b' GImage:Data="QUJD" xmp:Rating="2"'),
            ),
            segment(0xE2, b"FPXR\x00\x00" + b"x" * 10),
            segment(0xEB, b"JP\x00\x00jumb c2pa"),
            segment(0xED, _photoshop([(0x0404, iptc), (0x040C, b"\x00" * 28 + thumb)])),
            segment(0xE7, b"vendor preview" + thumb),
            segment(0xE8, b"harmless vendor data"),
            segment(0xE9, b"vendor png" + encoded(gradient(8, 8), "PNG")),
        )
        + b"appended motion-photo video"
    )
    image = decode(source)
    notes = " | ".join(image.notes)
    for word in (
        "JFIF thumbnail",
        "JFXX",
        "extended XMP",
        "GImage:Data",
        "FlashPix",
        "APP11",
        "Photoshop thumbnail",
        "APP7",
        "APP9",
        "after the JPEG",
    ):
        assert word in notes, word
    out = encode(image, protect(image.upright))
    assert thumb[20:] not in out and b"appended" not in out and b"c2pa" not in out
    assert _app_payloads(out, 0xE0)[0] == jfif_thumb[:12] + b"\x00\x00"
    assert _app_payloads(out, 0xED) == [_photoshop([(0x0404, iptc)])]
    assert _app_payloads(out, 0xE8) == [b"harmless vendor data"]
    assert _app_payloads(out, 0xE9) == []
    xmp_out = _app_payloads(out, 0xE1)[0]
    assert b"GImage:Data" not in xmp_out and b'xmp:Rating="2"' in xmp_out
    assert _open(out).size == (64, 48)


def _xmp_thumbnail(thumb: bytes, prefix: bytes = b"xmpGImg",
                   uri: bytes = b"http://ns.adobe.com/xap/1.0/g/img/") -> bytes:
    """An XMP packet with Photoshop's thumbnail property (base64 JPEG)."""
    image = prefix + b":image"
    return xmp_packet(b' xmlns:' + prefix + b'="' + uri + b'"><' + image + b">"
                      + base64.b64encode(thumb) + b"</" + image + b"><x:y")


def _exif_with_xmp(packet: bytes) -> bytes:
    fields = exif_dict()
    fields["0th"][piexif.ImageIFD.XMLPacket] = packet
    return piexif.dump(fields)


@pytest.mark.parametrize("place", [
    "COM holding a JPEG",
    "Photoshop EXIF resource with a thumbnail",
    "Photoshop XMP resource with a thumbnail",
    "XMP under the short XMP header",
    "XMP in UTF-16",
    "XMP whose namespace is written with a character reference",
    "XMP with a non-ASCII prefix",
    "XMP inside EXIF",
])
def test_no_copy_of_the_original_survives_in_any_standard_place(place: str) -> None:
    thumb = thumbnail_jpeg()
    xmp_header = b"http://ns.adobe.com/xap/1.0/\x00"
    carried = {
        "COM holding a JPEG": segment(0xFE, thumb),
        "Photoshop EXIF resource with a thumbnail":
            segment(0xED, _photoshop([(0x0422, exif_bytes(thumbnail=thumb)[6:])])),
        "Photoshop XMP resource with a thumbnail":
            segment(0xED, _photoshop([(0x0424, _xmp_thumbnail(thumb))])),
        "XMP under the short XMP header": segment(0xE1, b"XMP\x00" + _xmp_thumbnail(thumb)),
        "XMP in UTF-16": segment(0xE1, xmp_header + _xmp_thumbnail(thumb).decode().encode("utf-16-be")),
        "XMP whose namespace is written with a character reference": segment(0xE1, xmp_header + _xmp_thumbnail(
            thumb, b"q", b"http://ns.adobe.com/xap/1.0/g/img&#47;")),
        "XMP with a non-ASCII prefix": segment(0xE1, xmp_header + _xmp_thumbnail(thumb, "gé".encode())),
        "XMP inside EXIF": segment(0xE1, _exif_with_xmp(_xmp_thumbnail(thumb))),
    }[place]
    image = decode(with_segments(encoded(gradient(), "JPEG", quality=80), carried))
    out = encode(image, protect(image.upright))
    for copy in (thumb[20:], base64.b64encode(thumb)[40:120],
                 base64.b64encode(thumb)[40:120].decode().encode("utf-16-be")):
        assert copy not in out, place
    assert _open(out).size == (64, 48)


def test_photoshop_resources_split_over_segments_are_read_as_one() -> None:
    # a thumbnail record cut in two by the APP13 segment boundary, as Photoshop splits
    # resources over 64 KB: each half alone neither walks nor shows a JPEG
    thumb, iptc = thumbnail_jpeg(), b"\x1c\x02\x78\x00\x05hello"
    stream = _photoshop([(0x0404, iptc), (0x040C, b"\x00" * 28 + thumb)])
    cut = stream.index(b"\x00" * 28) + 10
    source = with_segments(encoded(gradient(), "JPEG", quality=80), segment(0xED, stream[:cut]),
                           segment(0xED, b"Photoshop 3.0\x00" + stream[cut:]))
    image = decode(source)
    assert "Photoshop thumbnail resource removed (or a copy of EXIF or XMP)" in image.notes
    out = encode(image, protect(image.upright))
    assert _app_payloads(out, 0xED) == [_photoshop([(0x0404, iptc)])]
    assert thumb[20:] not in out


def test_photoshop_resources_that_cannot_be_read_are_dropped() -> None:
    broken = b"Photoshop 3.0\x00" + b"8BIM\x04\x0c\x00\x00" + b"\xff" * 8 + b"rest of a preview"
    image = decode(with_segments(encoded(gradient(), "JPEG"), segment(0xED, broken)))
    assert any("Photoshop resources (APP13) dropped" in n for n in image.notes)
    assert _app_payloads(encode(image, protect(image.upright)), 0xED) == []


def test_a_zero_in_a_quantisation_table_is_written_as_one() -> None:
    source = bytearray(encoded(gradient(), "JPEG", quality=90))
    source[source.index(b"\xff\xdb") + 5 + 63] = 0  # the last entry of the first table
    image = decode(bytes(source))
    noisy = np.clip(image.upright.astype(int) + 30, 0, 255).astype(np.uint8)
    out = encode(image, noisy, size_mode="max")
    assert len(out) <= len(source) and min(_open(out).quantization[0]) >= 1


def test_mpo_secondary_frames_are_dropped() -> None:
    primary, second = gradient(), 255 - gradient()
    buf = io.BytesIO()
    Image.fromarray(primary).save(
        buf,
        "MPO",
        save_all=True,
        append_images=[Image.fromarray(second)],
        exif=exif_bytes(1, thumbnail_jpeg()),
        quality=90,
    )
    source = buf.getvalue()
    assert _open(source).format == "MPO"
    image = decode(source)
    assert image.format == "MPO" and image.mime == "image/jpeg"
    assert any("1 secondary frame" in n for n in image.notes)
    out = encode(image, protect(image.upright))
    after = Image.open(io.BytesIO(out))
    assert after.format == "JPEG" and getattr(after, "n_frames", 1) == 1
    assert b"MPF\x00" not in out and out.count(b"\xff\xd8") == 2  # the image and its EXIF thumbnail
    second_at = source.index(b"\xff\xd8", len(source) // 3)
    scan = source[source.index(b"\xff\xda", second_at) + 20 :][:64]
    assert scan not in out
    assert after.quantization == _open(source).quantization


def test_exact_and_max_sizes() -> None:
    source = encoded(
        gradient(), "JPEG", quality=90, exif=exif_bytes(1, thumbnail_jpeg()), comment=b"c"
    )
    image = decode(source)
    noise = np.random.default_rng(0).integers(-40, 40, image.upright.shape)
    noisy = np.clip(image.upright.astype(int) + noise, 0, 255).astype(np.uint8)
    assert len(encode(image, noisy)) > len(source)  # the budget must do work
    bounded = encode(image, noisy, size_mode="max")
    assert len(bounded) <= len(source)
    exact = encode(image, noisy, size_mode="exact")
    assert len(exact) == len(source)
    for data in (bounded, exact):
        after = _open(data)
        assert after.size == (64, 48) and after.info["comment"] == b"c"
        assert JpegImagePlugin.get_sampling(after) == JpegImagePlugin.get_sampling(_open(source))
        assert piexif.load(data)["0th"] == piexif.load(source)["0th"]


def test_exact_pads_when_the_same_tables_already_fit() -> None:
    source = encoded(gradient(), "JPEG", quality=90, comment=b"c")
    source = with_segments(source, segment(0xFE, b"filler " * 200))
    image = decode(source)
    out = encode(image, image.upright, size_mode="exact")
    assert len(out) == len(source)
    assert _open(out).quantization == _open(source).quantization
    again = decode(out)  # our padding is recognised, not carried as a comment
    assert len(encode(again, again.upright, size_mode="exact")) == len(out)
    assert b"grasp-guard padding" in out


def test_impossible_budget_raises() -> None:
    source = encoded(np.full((48, 64, 3), 128, np.uint8), "JPEG", quality=1, optimize=True)
    image = decode(source)
    noise = np.random.default_rng(0).integers(0, 256, image.upright.shape, dtype=np.uint8)
    with pytest.raises(SizeBudgetError, match="JPEG cannot be re-encoded within"):
        encode(image, noise, size_mode="max")


def test_adobe_rgb_jpeg_stays_untransformed() -> None:
    source = encoded(gradient(), "JPEG", quality=90, keep_rgb=True, subsampling=0)
    assert _open(source).info["adobe_transform"] == 0
    image = decode(source)
    assert image.params.keep_rgb
    protected = protect(image.upright)
    after = _open(encode(image, protected))
    assert after.info["adobe_transform"] == 0 and [c[0] for c in after.layer] == [
        ord(c) for c in "RGB"
    ]
    assert np.abs(np.asarray(after).astype(int) - protected).mean() < 4


def test_a_jfif_file_with_an_adobe_rgb_marker_is_read_and_written_as_ycbcr() -> None:
    # libjpeg (Pillow, browsers) reads it as YCbCr: the JFIF marker wins. Written untransformed
    # under the JFIF marker it kept, every reader showed wrong colours (10 dB).
    ycbcr = encoded(gradient(), "JPEG", quality=90)
    adobe = segment(0xEE, b"Adobe" + bytes([0, 100, 0, 0, 0, 0, 0]))  # transform 0
    source = ycbcr[:2] + adobe + ycbcr[2:]
    assert "jfif" in _open(source).info and _open(source).info["adobe_transform"] == 0
    image = decode(source)
    assert not image.params.keep_rgb
    after = np.asarray(_open(encode(image, image.upright))).astype(int)
    assert np.abs(after - image.upright).mean() < 2


def _swap_table_numbers(jpeg: bytes) -> bytes:
    """``jpeg`` with quantisation tables 0 and 1 renumbered, and the frame's components with
    them: luma uses table 1, chroma table 0 (legal, and read the same)."""
    out, pos = bytearray(jpeg), 2
    while out[pos + 1] != 0xDA:
        length = int.from_bytes(out[pos + 2:pos + 4], "big")
        if out[pos + 1] == 0xDB:
            at = pos + 4
            while at < pos + 2 + length:
                out[at] ^= 1
                at += 1 + 64 * (2 if out[at] >> 4 else 1)
        elif out[pos + 1] == 0xC0:
            for k in range(out[pos + 9]):
                out[pos + 12 + 3 * k] ^= 1
        pos += 2 + length
    return bytes(out)


def test_tables_follow_the_components_not_their_numbers() -> None:
    normal = encoded(gradient(), "JPEG", quality=90)
    source = _swap_table_numbers(normal)
    assert _open(source).layer[0][3] == 1
    np.testing.assert_array_equal(np.asarray(_open(source)), np.asarray(_open(normal)))
    after = _open(encode(decode(source), decode(source).upright))
    luma = _open(normal).quantization[0]
    assert list(after.quantization[after.layer[0][3]]) == list(luma)  # not the chroma table


def test_a_large_segment_of_unknown_kind_is_dropped_for_the_pixels_it_may_hold() -> None:
    # a deflated preview shows no signature: an unknown segment that could hold one goes
    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    preview = b"VENDOR\x00" + zlib.compress(pixels.tobytes())
    source = with_segments(encoded(gradient(), "JPEG", quality=85, icc_profile=icc_profile(70_000, b"A2B0")),
                           segment(0xE9, b"vendor data"), segment(0xE3, preview))
    image = decode(source)
    assert any("APP3 segment of unknown kind dropped" in n for n in image.notes)
    out = encode(image, protect(image.upright))
    assert _app_payloads(out, 0xE3) == [] and _app_payloads(out, 0xE9) == [b"vendor data"]
    assert _open(out).info["icc_profile"] == icc_profile(70_000, b"A2B0")  # known, however large


def test_a_preview_split_across_small_segments_of_unknown_kind_is_dropped() -> None:
    # the allowance is the file's: 1 KB of unknown segments in all, whatever their number
    pixels = np.random.default_rng(1).integers(0, 256, 18_000, dtype=np.uint8).tobytes()
    pieces = [segment(0xE3, pixels[i : i + 1000]) for i in range(0, len(pixels), 1000)]
    image = decode(with_segments(encoded(gradient(), "JPEG", quality=85), *pieces))
    out = encode(image, protect(image.upright))
    assert len(_app_payloads(out, 0xE3)) == 1
    assert sum("APP3 segment of unknown kind dropped" in n for n in image.notes) == 17


def test_an_adobe_segment_is_carried_at_its_own_length_only() -> None:
    # its colour transform is needed whatever else the file holds; what follows it is not
    adobe = b"Adobe\x00\x64\x00\x00\x00\x00\x01"
    padded = adobe + np.random.default_rng(2).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    vendor = segment(0xE3, bytes(1020))  # takes the file's allowance for unknown segments
    for payload in (adobe, padded):
        source = with_segments(encoded(gradient(), "JPEG", quality=85), vendor, segment(0xEE, payload))
        image = decode(source)
        out = encode(image, protect(image.upright))
        assert _app_payloads(out, 0xEE) == [adobe]


def test_xmp_under_the_short_header_is_carried_whatever_its_size() -> None:
    # a known kind, checked for images, not held to the allowance for unknown segments
    packet = b"XMP\x00" + XMP + b" " * 3000
    image = decode(with_segments(encoded(gradient(), "JPEG", quality=85), segment(0xE1, packet)))
    out = encode(image, protect(image.upright))
    assert packet in _app_payloads(out, 0xE1)
