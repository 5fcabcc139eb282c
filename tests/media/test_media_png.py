import base64
import binascii
import io
import struct
import zlib

import cv2
import numpy as np
import piexif
import pytest
from _media_builders import (
    encoded,
    exif_bytes,
    gradient,
    icc_profile,
    protect,
    thumbnail_jpeg,
    xmp_packet,
)
from PIL import Image, PngImagePlugin

from grasp_guard.errors import SizeBudgetError
from grasp_guard.media import decode, encode, png_text
from grasp_guard.media.png_chunks import SIGNATURE, Chunk, read_chunks
from grasp_guard.media.png_filter import encode_idat
from grasp_guard.media.sniff import OpaqueAllowance


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _grey(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


def _chunk_types(data: bytes) -> list[bytes]:
    return [c.type for c in read_chunks(data)]


def _png16(samples: np.ndarray) -> bytes:
    """16-bit PNG via OpenCV (Pillow cannot write 16-bit colour): samples in RGB(A) order."""
    order = [2, 1, 0, 3][: samples.shape[2]] if samples.ndim == 3 else None
    ok, buf = cv2.imencode(".png", samples[:, :, order] if order else samples)
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_lossless_modes_keep_mode_alpha_and_protected_pixels(mode: str) -> None:
    rgb = gradient()
    alpha = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
    pixels = {
        "RGB": rgb,
        "RGBA": np.dstack([rgb, alpha]),
        "L": _grey(rgb),
        "LA": np.dstack([_grey(rgb), alpha]),
    }[mode]
    source = encoded(pixels, "PNG")
    image = decode(source)
    assert (image.alpha is not None) is ("A" in mode)
    protected = protect(image.upright)
    after = _open(encode(image, protected))
    assert after.mode == mode
    got = np.asarray(after)
    if mode.startswith("RGB"):
        np.testing.assert_array_equal(got[:, :, :3], protected)
    else:
        np.testing.assert_array_equal(got.reshape(48, 64, -1)[:, :, 0], _grey(protected))
    if "A" in mode:
        np.testing.assert_array_equal(got[:, :, -1], alpha)


@pytest.mark.parametrize(("transparency", "mode"), [(None, "RGB"), (3, "RGBA")])
def test_palette_images_are_expanded_and_reported(transparency: int | None, mode: str) -> None:
    palette_image = Image.fromarray(gradient()).quantize(16)
    out = io.BytesIO()
    palette_image.save(
        out, "PNG", **({"transparency": transparency} if transparency is not None else {})
    )
    source = out.getvalue()
    image = decode(source)
    assert any("palette PNG written as 8-bit RGB" in n for n in image.notes)
    expected_alpha = np.where(np.asarray(palette_image) == transparency, 0, 255)
    if transparency is not None:
        np.testing.assert_array_equal(image.alpha, expected_alpha)
    protected = protect(image.upright)
    data = encode(image, protected)
    assert b"PLTE" not in _chunk_types(data) and b"tRNS" not in _chunk_types(data)
    after = _open(data)
    assert after.mode == mode
    np.testing.assert_array_equal(np.asarray(after)[:, :, :3], protected)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_low_bit_grey_keeps_its_transparent_key(depth: int) -> None:
    top = (1 << depth) - 1
    levels = np.tile(np.arange(64) % (top + 1), (48, 1))  # every level, the key among them
    rows = b""
    for row in levels:  # 64 samples of 1, 2 or 4 bits fill whole bytes
        bits = "".join(format(v, f"0{depth}b") for v in row)
        rows += b"\0" + bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    source = (SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 48, depth, 0, 0, 0, 0))
              + chunk(b"tRNS", struct.pack(">H", top)) + chunk(b"IDAT", zlib.compress(rows))
              + chunk(b"IEND", b""))
    image = decode(source)
    keyed = levels == top  # every sample at the key is transparent (PNG spec, libpng)
    np.testing.assert_array_equal(image.alpha, np.where(keyed, 0, 255))
    after = np.asarray(_open(encode(image, image.upright)))
    np.testing.assert_array_equal(after[:, :, 1], np.where(keyed, 0, 255))


def test_one_bit_grey_becomes_8bit_grey() -> None:
    source = encoded(gradient()[:, :, 0] > 128, "PNG")
    image = decode(source)
    assert any("1-bit grey PNG" in n for n in image.notes)
    after = _open(encode(image, protect(image.upright)))
    assert after.mode == "L"


def test_colour_key_transparency_stays_exact() -> None:
    rgb = gradient()
    rgb[:5, :5] = (10, 20, 30)
    source = encoded(rgb, "PNG", transparency=(10, 20, 30))
    image = decode(source)
    assert (
        image.alpha is not None and image.alpha[:5, :5].max() == 0 and image.alpha[5:].min() == 255
    )
    protected = image.upright.copy()
    protected[:5, :5] = 0  # the engine touched transparent pixels
    protected[40, 40] = (10, 20, 30)  # and made an opaque pixel hit the key colour
    after = _open(encode(image, protected))
    assert after.info["transparency"] == (10, 20, 30)
    got = np.asarray(after.convert("RGBA"))
    assert got[:5, :5, 3].max() == 0 and got[5:, :, 3].min() == 255
    assert (
        tuple(got[40, 40, :3]) != (10, 20, 30)
        and np.abs(got[40, 40, :3].astype(int) - (10, 20, 30)).sum() == 1
    )


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_precision_is_kept(channels: int) -> None:
    rng = np.random.default_rng(channels)
    samples = rng.integers(0, 65536, (48, 64, channels)).astype(np.uint16)
    source = _png16(samples if channels > 1 else samples[:, :, 0])
    image = decode(source)
    protected = image.upright.copy()
    protected[10:20, 10:20] = np.clip(protected[10:20, 10:20].astype(int) + 3, 0, 255)
    data = encode(image, protected)
    ihdr = read_chunks(data)[0].data
    assert ihdr[8] == 16
    got = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    got = got[:, :, None] if got.ndim == 2 else got[:, :, [2, 1, 0, 3][:channels]]
    delta = protected.astype(int) - image.upright
    if channels == 1:
        delta = _grey(protected).astype(int)[:, :, None] - _grey(image.upright)[:, :, None]
    colour = min(channels, 3)
    expected = np.clip(samples[:, :, :colour].astype(int) + delta * 257, 0, 65535)
    np.testing.assert_array_equal(got[:, :, :colour], expected)
    assert (got[:20, :20] != samples[:20, :20]).any()
    np.testing.assert_array_equal(got[20:], samples[20:])  # untouched rows: every 16-bit value kept
    if channels == 4:
        np.testing.assert_array_equal(got[:, :, 3], samples[:, :, 3])


def test_interlaced_source_stays_interlaced() -> None:
    rgb = gradient()
    ihdr = struct.pack(">IIBBBBB", 64, 48, 8, 2, 0, 0, 1)
    source = SIGNATURE + b"".join(
        Chunk(t, d).to_bytes()
        for t, d in [(b"IHDR", ihdr), (b"IDAT", encode_idat(rgb, interlace=True)), (b"IEND", b"")]
    )
    image = decode(source)
    np.testing.assert_array_equal(image.upright, rgb)
    data = encode(image, protect(image.upright))
    assert read_chunks(data)[0].data[12] == 1
    np.testing.assert_array_equal(np.asarray(_open(data)), protect(rgb))


def _rich_source() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add(b"gAMA", struct.pack(">I", 45455))
    info.add(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000))
    info.add_text("Title", "a title")
    info.add_text("Comment", "zipped " * 20, zip=True)
    info.add_itxt("Description", "déjà vu", lang="fr", tkey="Description")
    info.add_itxt("XML:com.adobe.xmp", xmp_packet(b' xmp:Rating="3" GImage:Data="QUJD"').decode())
    info.add(b"prVt", b"private, safe to copy")
    info.add(b"prVT", b"private, unsafe to copy")
    info.add(b"caBX", b"c2pa manifest")
    hex_profile = "\nexif\n      20\n" + binascii.hexlify(thumbnail_jpeg()).decode() + "\n"
    info.add_text("Raw profile type exif", hex_profile, zip=True)
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 1, 2, 3, 4, 5), after_idat=True)
    info.add(b"prVa", b"after the image data", after_idat=True)
    png = encoded(
        gradient(),
        "PNG",
        pnginfo=info,
        icc_profile=icc_profile(),
        exif=exif_bytes(1, thumbnail_jpeg()),
        dpi=(300, 300),
    )
    at = png.index(b"IDAT") - 4  # Pillow refuses to write iDOT: add it by hand
    return png[:at] + Chunk(b"iDOT", bytes(28)).to_bytes() + png[at:]


def test_chunks_are_carried_in_place_and_image_carriers_dropped() -> None:
    source = _rich_source()
    image = decode(source)
    notes = " | ".join(image.notes)
    for word in ("prVT", "iDOT", "caBX", "Raw profile type exif", "GImage:Data", "EXIF thumbnail"):
        assert word in notes, word
    data = encode(image, protect(image.upright))
    dropped = {b"prVT", b"iDOT", b"caBX"}
    before, after = read_chunks(source), read_chunks(data)
    raw_profile = next(c for c in before if c.type == b"zTXt" and c.data.startswith(b"Raw profile"))
    expected = [c.type for c in before if c.type not in dropped and c is not raw_profile]
    assert [c.type for c in after] == expected
    for old, new in zip(
        [c for c in before if c.type not in dropped and c is not raw_profile], after, strict=True
    ):
        if old.type in (b"IDAT", b"eXIf") or (
            old.type == b"iTXt" and old.data.startswith(b"XML:com.adobe.xmp")
        ):
            continue
        assert new == old, old.type
    reread, original = _open(data), _open(source)
    for key in ("icc_profile", "gamma", "dpi", "Title", "Comment", "Description"):
        assert reread.info.get(key) == original.info.get(key), key
    assert b"GImage:Data" not in reread.info["XML:com.adobe.xmp"].encode()
    exif_before, exif_after = piexif.load(original.info["exif"]), piexif.load(reread.info["exif"])
    for ifd in ("0th", "Exif", "GPS"):
        assert exif_after[ifd] == exif_before[ifd]
    assert exif_after["thumbnail"] and exif_after["thumbnail"] != exif_before["thumbnail"]


def test_exact_and_max_sizes() -> None:
    source = encoded(gradient(), "PNG", pnginfo=None, compress_level=1)
    image = decode(source)
    protected = protect(image.upright)
    bounded = encode(image, protected, size_mode="max")
    exact = encode(image, protected, size_mode="exact")
    assert len(bounded) <= len(source) and len(exact) == len(source)
    for data in (bounded, exact):
        np.testing.assert_array_equal(np.asarray(_open(data)), protected)
    again = decode(exact)  # the padding chunk is not carried twice
    assert b"grPd" not in [c.type for c in again.params.before + again.params.after]


def test_noise_cannot_fit_a_flat_png() -> None:
    source = encoded(np.full((48, 64, 3), 90, np.uint8), "PNG")
    image = decode(source)
    noise = np.random.default_rng(0).integers(0, 256, image.upright.shape, dtype=np.uint8)
    for mode in ("max", "exact"):
        with pytest.raises(SizeBudgetError, match="PNG cannot be re-encoded within"):
            encode(image, noise, size_mode=mode)


def _raw_profile(name: str, data: bytes) -> str:
    return f"\n{name}\n{len(data):8d}\n{binascii.hexlify(data).decode()}\n"


def test_text_that_holds_the_image_is_cleaned_not_dropped() -> None:
    """XMP in tEXt/zTXt and ImageMagick's raw profiles lose their previews, keep the rest."""
    thumb_xmp = xmp_packet(b' xmp:Rating="4"><xmp:Thumbnails><rdf:Alt><rdf:li>'
                           b'<xmpGImg:image>/9j/4AAQ</xmpGImg:image></rdf:li></rdf:Alt>'
                           b'</xmp:Thumbnails></rdf:Description><rdf:Description rdf:about=""')
    info = PngImagePlugin.PngInfo()
    info.add_text("XML:com.adobe.xmp", thumb_xmp.decode())
    info.add_text("Raw profile type xmp", _raw_profile("xmp", thumb_xmp), zip=True)
    info.add_text("Raw profile type exif", _raw_profile("exif", exif_bytes(1, thumbnail_jpeg())))
    source = encoded(gradient(), "PNG", pnginfo=info)
    image = decode(source)
    out = _open(encode(image, protect(image.upright)))
    def profile(key: str) -> bytes:
        return bytes.fromhex("".join(out.info[key].split("\n")[3:]))  # as Pillow reads one

    for packet in (out.info["XML:com.adobe.xmp"].encode(), profile("Raw profile type xmp")):
        assert b"xmpGImg:image" not in packet and b'xmp:Rating="4"' in packet
    raw_exif = profile("Raw profile type exif")
    assert thumbnail_jpeg()[20:] not in raw_exif
    assert piexif.load(raw_exif)["0th"] == piexif.load(exif_bytes(1, thumbnail_jpeg()))["0th"]
    assert any("Raw profile type exif" in n for n in image.notes)


def test_text_of_any_keyword_that_holds_an_image_is_dropped() -> None:
    thumb = thumbnail_jpeg()
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", base64.b64encode(thumb).decode())
    info.add_text("Thumbnail", thumb.decode("latin-1"), zip=True)
    info.add_text("Title", "a title")
    source = encoded(gradient(), "PNG", pnginfo=info)
    image = decode(source)
    out = encode(image, protect(image.upright))
    assert thumb[20:] not in out and base64.b64encode(thumb)[40:120] not in out
    assert zlib.compress(thumb[20:])[4:40] not in out
    kept = _open(out).info
    assert kept["Title"] == "a title" and "Comment" not in kept and "Thumbnail" not in kept
    assert any("'Comment' text dropped" in n for n in image.notes)


def test_a_text_chunk_that_inflates_past_the_bound_is_dropped_unread() -> None:
    # (Pillow refuses a PNG with a text chunk past its own, smaller bound before this runs)
    bomb = Chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(bytes(png_text.MAX_TEXT_BYTES + 1), 9))
    notes: list[str] = []
    assert png_text.clean(bomb, notes, OpaqueAllowance()) is None
    assert notes == ["unreadable 'Comment' text dropped: it may hold a preview"]


def test_a_large_private_chunk_is_dropped_for_the_pixels_it_may_hold() -> None:
    # a Fireworks-style preview, deflated: no signature shows it
    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add(b"prVw", zlib.compress(pixels.tobytes()))
    info.add(b"vpAg", struct.pack(">IIB", 64, 48, 0))
    image = decode(encoded(gradient(), "PNG", pnginfo=info))
    assert any("private chunk b'prVw' dropped" in n for n in image.notes)
    kinds = [c.type for c in read_chunks(encode(image, protect(image.upright)))]
    assert b"prVw" not in kinds and b"vpAg" in kinds


def test_a_preview_split_across_small_private_chunks_is_dropped() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, 18_000, dtype=np.uint8).tobytes()
    info = PngImagePlugin.PngInfo()
    for i in range(0, len(pixels), 1000):
        info.add(b"prVw", pixels[i : i + 1000])
    image = decode(encoded(gradient(), "PNG", pnginfo=info))
    kinds = [c.type for c in read_chunks(encode(image, protect(image.upright)))]
    assert kinds.count(b"prVw") == 1
