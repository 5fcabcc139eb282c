import io
import struct
import zlib

import numpy as np
import piexif
import pillow_heif
import pytest
from _media_builders import (
    exif_bytes,
    gradient,
    heic,
    icc_profile,
    protect,
    thumbnail_jpeg,
    xmp_packet,
)
from grasp_sdk.sniff import image_type
from PIL import Image

from grasp_guard.errors import (
    GraspGuardError,
    ImageTooLargeError,
    InvalidImageError,
    UnsupportedFormatError,
)
from grasp_guard.media import bmff, decode, encode, heif
from grasp_guard.media.heif import source_quality
from grasp_guard.media.orientation import ORIENTATIONS, to_stored

XMP = xmp_packet(b' xmp:Rating="5"')


def _textured(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """A gradient with noise: its coding cost depends on the quality, as a photo's does."""
    noise = np.random.default_rng(seed).integers(-24, 24, (height, width, 3))
    return np.clip(gradient(height, width).astype(int) + noise, 0, 255).astype(np.uint8)


def _item_payloads(data: bytes) -> dict[int, bytes]:
    """item id → the bytes of its single extent (libheif's own files have one per item)."""
    meta = next((lo, hi) for kind, lo, hi in bmff.boxes(data) if kind == b"meta")
    iloc = next(
        (lo, hi) for kind, lo, hi in bmff.boxes(data, meta[0] + 4, meta[1]) if kind == b"iloc"
    )
    lo = iloc[0]
    version = data[lo]
    offset_size, length_size = data[lo + 4] >> 4, data[lo + 4] & 15
    base_size = data[lo + 5] >> 4
    pos, count = lo + 8, struct.unpack_from(">H", data, lo + 6)[0]
    payloads = {}
    for _ in range(count):
        item = struct.unpack_from(">H", data, pos)[0]
        pos += 2 + (2 if version == 1 else 0) + 2 + base_size
        assert struct.unpack_from(">H", data, pos)[0] == 1
        pos += 2
        offset = int.from_bytes(data[pos : pos + offset_size], "big")
        length = int.from_bytes(data[pos + offset_size : pos + offset_size + length_size], "big")
        pos += offset_size + length_size
        payloads[item] = data[offset : offset + length]
    return payloads


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_round_trip_keeps_orientation_geometry_and_metadata(orientation: int) -> None:
    upright = gradient()
    stored = np.ascontiguousarray(to_stored(upright, orientation))
    exif = exif_bytes(orientation, thumbnail_jpeg((0, 200, 0)))
    source = heic(stored, quality=90, exif=exif, xmp=XMP, icc_profile=icc_profile())
    image = decode(source)
    assert (image.format, image.mime, image.orientation) == ("HEIF", "image/heic", orientation)
    assert image.params.coded_orientation == orientation
    assert not any("rewritten" in n for n in image.notes)
    assert np.abs(image.upright.astype(int) - upright).mean() < 3
    protected = protect(image.upright)
    out = encode(image, protected)
    after = pillow_heif.open_heif(out)
    assert len(after) == 1 and after.info["icc_profile"] == icc_profile()
    assert after.info["xmp"] == XMP
    before_exif, after_exif = piexif.load(exif), piexif.load(after.info["exif"])
    for ifd in ("0th", "Exif", "GPS", "Interop"):
        assert after_exif[ifd] == before_exif[ifd], ifd
    assert after_exif["thumbnail"] != before_exif["thumbnail"]
    assert before_exif["thumbnail"] not in out
    thumb = np.asarray(Image.open(io.BytesIO(after_exif["thumbnail"])).convert("RGB")).astype(int)
    protected_stored = Image.fromarray(np.ascontiguousarray(to_stored(protected, orientation)))
    expected = np.asarray(protected_stored.resize(thumb.shape[1::-1])).astype(int)
    assert np.abs(thumb - expected).mean() < 20  # the EXIF thumbnail shows the protected pixels
    again = decode(out)
    assert again.orientation == orientation and again.params.coded_orientation == orientation
    assert np.asarray(after).shape == np.asarray(pillow_heif.open_heif(source)).shape
    assert np.abs(again.upright.astype(int) - protected).mean() < 4


def test_heif_thumbnails_are_regenerated_from_the_protected_pixels() -> None:
    source = heic(_textured(), quality=90, thumbnails=[48])
    (thumbnail_item,) = bmff.read_items(source).references[b"thmb"]
    old_thumbnail = _item_payloads(source)[thumbnail_item]
    image = decode(source)
    assert any("1 HEIF thumbnail(s) regenerated" in n for n in image.notes)
    protected = protect(image.upright)
    out = encode(image, protected)
    assert old_thumbnail[-64:] not in out
    after = pillow_heif.open_heif(out)
    assert after.info["thumbnails"] == [48]
    thumb = np.asarray(after[0].get_thumbnail(0)).astype(int)
    small_protected = np.asarray(
        pillow_heif.open_heif(heic(protected, quality=90)).to_pillow().resize(thumb.shape[1::-1])
    ).astype(int)
    small_original = np.asarray(
        pillow_heif.open_heif(source).to_pillow().resize(thumb.shape[1::-1])
    ).astype(int)
    assert np.abs(thumb - small_protected).mean() < np.abs(thumb - small_original).mean() / 4


def test_other_top_level_images_are_dropped_and_the_primary_protected() -> None:
    first, second = _textured(seed=1), _textured(seed=2)[::-1].copy()
    heif = pillow_heif.from_bytes("RGB", (128, 96), first.tobytes())
    heif.add_frombytes("RGB", (128, 96), second.tobytes())
    buf = io.BytesIO()
    heif.save(buf, quality=90, primary_index=1)
    source = buf.getvalue()
    first_coded = _item_payloads(source)[1]
    image = decode(source)
    error = {
        name: np.abs(image.upright.astype(int) - pixels).mean()
        for name, pixels in (("first", first), ("second", second))
    }
    assert error["second"] < error["first"] / 4  # the primary, not the first image
    assert any("1 other top-level image(s) dropped" in n for n in image.notes)
    out = encode(image, protect(image.upright))
    assert len(pillow_heif.open_heif(out)) == 1
    assert first_coded[-64:] not in out


def _with_auxiliary_image(source: bytes, aux_type: bytes) -> bytes:
    """``source`` (with one 48-px thumbnail) whose thumbnail is turned into an auxiliary image.

    pillow-heif writes no auxiliary images (gain maps, mattes, depth): the thumbnail's
    reference becomes ``auxl`` and its ``clap`` (a 40-byte box: offsets stay valid) an ``auxC``.
    """
    clap = struct.pack(">I", 40) + b"clap"
    assert source.count(clap) == 1 and source.count(b"thmb") == 1
    at = source.index(clap)
    auxc = struct.pack(">I", 40) + b"auxC" + (bytes(4) + aux_type + b"\x00").ljust(32, b"\x00")
    return (source[:at] + auxc + source[at + 40 :]).replace(b"thmb", b"auxl")


def test_auxiliary_images_are_dropped() -> None:
    source = _with_auxiliary_image(
        heic(gradient(96, 128), quality=90, thumbnails=[48]), b"urn:x:gain"
    )
    (aux_item,) = bmff.read_items(source).references[b"auxl"]
    aux_coded = _item_payloads(source)[aux_item]
    image = decode(source)
    assert any("1 auxiliary image(s) dropped (urn:x:gain)" in n for n in image.notes)
    out = encode(image, protect(image.upright))
    after = pillow_heif.open_heif(out)
    assert after.info["aux"] == {} and after.info["thumbnails"] == []
    assert aux_coded[-64:] not in out


def test_xmp_that_embeds_images_is_sanitised() -> None:
    packet = xmp_packet(b' GImage:Data="QUJD" xmp:Rating="2"')
    image = decode(heic(gradient(), quality=90, xmp=packet))
    assert any("GImage:Data" in n for n in image.notes)
    after = pillow_heif.open_heif(encode(image, image.upright)).info["xmp"]
    assert b"GImage:Data" not in after and b'xmp:Rating="2"' in after


def test_metadata_items_are_carried_unless_they_may_hold_pixels() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    raw = zlib.compress(pixels.tobytes())  # a deflated preview: no signature
    items = [
        {"type": "uri ", "content_type": "", "data": b"harmless vendor data"},
        {"type": "uri ", "content_type": "", "data": b"preview" + thumbnail_jpeg()},
        {"type": "uri ", "content_type": "", "data": raw},
    ]
    image = decode(heic(gradient(), quality=90, metadata=items))
    assert sum("may hold the original's pixels" in n for n in image.notes) == 2
    out = encode(image, image.upright)
    assert b"harmless vendor data" in out and thumbnail_jpeg()[20:] not in out
    assert raw not in out


@pytest.mark.parametrize("chroma", [420, 444])
def test_chroma_subsampling_and_grid_tiles_are_kept(chroma: int) -> None:
    source = heic(_textured(), quality=90, chroma=chroma, tile_size=64)
    image = decode(source)
    assert image.params.chroma == chroma and image.params.tile_size == 64
    after = pillow_heif.open_heif(encode(image, protect(image.upright)))
    assert after.info["chroma"] == chroma
    assert after.info["tiling"]["tile_width"] == 64 and after.info["tiling"]["num_columns"] == 2


def test_grey_stays_grey_and_alpha_is_kept() -> None:
    grey = decode(heic(gradient()[:, :, 0], quality=90))
    assert grey.params.chroma is None and grey.upright.shape == (48, 64, 3)
    assert pillow_heif.open_heif(encode(grey, protect(grey.upright))).mode == "L"
    rgba = np.dstack([gradient(), np.full((48, 64), 77, np.uint8)])
    image = decode(heic(rgba, quality=90))
    assert image.alpha is not None
    after = np.asarray(pillow_heif.open_heif(encode(image, image.upright)))
    assert after.shape[2] == 4 and np.abs(after[:, :, 3].astype(int) - 77).max() <= 2


@pytest.mark.parametrize("quality", [50, 90])
@pytest.mark.parametrize("tile_size", [0, 64])
def test_quality_is_matched_to_the_source(quality: int, tile_size: int) -> None:
    source = heic(_textured(), quality=quality, tile_size=tile_size)
    image = decode(source)
    estimate = source_quality(image)
    assert quality - 3 <= estimate <= quality + 10  # decoded pixels are cheaper: errs upwards
    assert 0.75 < len(encode(image, image.upright)) / len(source) < 1.3


def test_transforms_that_disagree_with_the_tag_are_rewritten_and_display_the_same() -> None:
    upright = gradient()
    source = heic(np.ascontiguousarray(to_stored(upright, 6)), quality=90, exif=exif_bytes(6))
    tag = struct.pack(">HHI", 0x0112, 3, 1) + struct.pack(">H", 6)
    assert source.count(tag) == 1  # piexif writes big-endian: patch the tag to 1, keep irot
    source = source.replace(tag, tag[:-2] + struct.pack(">H", 1))
    image = decode(source)
    assert image.orientation == 1 and image.params.coded_orientation == 6
    assert any("rewritten" in n for n in image.notes)
    assert np.abs(image.upright.astype(int) - upright).mean() < 3
    again = decode(encode(image, image.upright))
    assert again.params.coded_orientation == 1
    assert np.abs(again.upright.astype(int) - upright).mean() < 4


def test_exact_and_max_sizes() -> None:
    source = heic(_textured(), quality=60)
    image = decode(source)
    noisy = np.clip(
        image.upright.astype(int) + np.random.default_rng(3).integers(-40, 40, image.upright.shape),
        0,
        255,
    ).astype(np.uint8)
    assert len(encode(image, noisy)) > len(source)  # the budget must do work
    bounded = encode(image, noisy, size_mode="max")
    exact = encode(image, noisy, size_mode="exact")
    assert len(bounded) <= len(source) and len(exact) == len(source)
    for data in (bounded, exact):
        assert decode(data).upright.shape == image.upright.shape


def _truncations(source: bytes) -> list[bytes]:
    return [source[:n] for n in (20, 40, len(source) // 3, len(source) // 2, len(source) - 7)]


SOURCE = heic(_textured(), quality=80, exif=exif_bytes(6), thumbnails=[48])


@pytest.mark.parametrize("data", _truncations(SOURCE), ids=lambda d: f"{len(d)}-bytes")
def test_truncated_files_raise_invalid_image(data: bytes) -> None:
    with pytest.raises(InvalidImageError, match="HEIF"):
        decode(data)


def test_hostile_files_raise_typed_errors() -> None:
    with pytest.raises(InvalidImageError):
        decode(SOURCE[:32] + bytes(400))  # an ftyp and nothing readable
    meta = SOURCE.index(b"meta")
    with pytest.raises((InvalidImageError, UnsupportedFormatError), match="HEIF"):
        decode(SOURCE[:meta] + b"meta" + b"\xff" * 64 + SOURCE[meta + 68 :])
    with pytest.raises(ImageTooLargeError, match="exceeds the limit"):
        decode(SOURCE, max_pixels=100)
    ispe = SOURCE.index(b"ispe")
    huge = SOURCE[: ispe + 8] + struct.pack(">II", 60_000, 60_000) + SOURCE[ispe + 16 :]
    with pytest.raises((ImageTooLargeError, InvalidImageError)):
        decode(huge)
    avc = SOURCE.replace(b"hvc1", b"avc1")  # an item coding libheif has no decoder for here
    with pytest.raises((UnsupportedFormatError, InvalidImageError)):
        decode(avc)


@pytest.mark.parametrize("seed", range(6))
def test_damaged_files_decode_or_raise_typed_errors(seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = bytearray(SOURCE)
    for at in rng.integers(0, len(data), size=1 + seed % 4):
        data[at] = rng.integers(0, 256)
    try:
        image = decode(bytes(data))
    except GraspGuardError:
        return
    assert len(encode(image, image.upright)) > 0


def test_without_pillow_heif_heif_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heif, "AVAILABLE", False)
    with pytest.raises(UnsupportedFormatError, match="needs pillow-heif"):
        decode(SOURCE)


def test_a_generic_mif1_file_comes_back_generic() -> None:
    source = bmff.replace_brand(heic(gradient(), quality=90), b"heic", b"mif1")
    assert image_type(source) == "image/heif"  # how the SDK tells what to expect back
    image = decode(source)
    assert not image.params.hevc_branded
    out = encode(image, protect(image.upright))
    assert image_type(out) == "image/heif" and b"heic" not in out[:32]
    assert image_type(encode(decode(SOURCE), decode(SOURCE).upright)) == "image/heic"
