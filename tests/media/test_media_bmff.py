import struct

import pytest
from _media_builders import exif_bytes, gradient, heic

from grasp_guard.media import bmff


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def test_items_of_a_grid_with_a_thumbnail_and_exif() -> None:
    data = heic(gradient(96, 128), quality=80, tile_size=64, thumbnails=[48], exif=exif_bytes(6))
    assert bmff.top_level_types(data) == [b"ftyp", b"meta", b"mdat"]
    index = bmff.read_items(data)
    assert index.primary is not None and index.types[index.primary] == b"grid"
    tiles = index.tiles(index.primary)
    assert len(tiles) == 4 and {index.types[t] for t in tiles} == {b"hvc1"}
    assert index.coded_length(index.primary) == sum(index.lengths[t] for t in tiles)
    ((thumbnail, master),) = ((k, v) for k, v in index.references[b"thmb"].items())
    assert master == (index.primary,) and index.types[thumbnail] == b"hvc1"
    ((exif_item, described),) = index.references[b"cdsc"].items()
    assert index.types[exif_item] == b"Exif" and described == (index.primary,)
    assert index.data_end == len(data)
    kinds = [kind for kind, _ in index.properties[index.primary]]
    assert b"ispe" in kinds and b"irot" in kinds


def test_a_single_coded_image_is_its_own_coded_length() -> None:
    data = heic(gradient(), quality=80)
    index = bmff.read_items(data)
    assert index.primary is not None and index.tiles(index.primary) == ()
    assert index.coded_length(index.primary) == index.lengths[index.primary] > 100


def test_box_walk_stops_at_a_truncated_box() -> None:
    data = _box(b"ftyp", b"heic" + bytes(4)) + _box(b"free", bytes(20))
    assert [k for k, _, _ in bmff.boxes(data)] == [b"ftyp", b"free"]
    assert [k for k, _, _ in bmff.boxes(data[:-1])] == [b"ftyp"]
    large = struct.pack(">I4sQ", 1, b"mdat", 16 + 4) + b"abcd"
    assert [(k, hi - lo) for k, lo, hi in bmff.boxes(large)] == [(b"mdat", 4)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_box(b"ftyp", b"heic" + bytes(4)) + _box(b"mdat", b"x"), "no 'meta' box"),
        (_box(b"meta", bytes(4) + _box(b"pitm", b"\x00")), "runs past its box"),
        (_box(b"meta", bytes(4) + _box(b"iloc", b"\x03" + bytes(7))), "iloc version 3"),
    ],
)
def test_malformed_meta_raises_value_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bmff.read_items(data)


def test_brands_are_read_and_renamed_in_place() -> None:
    data = heic(gradient(), quality=80)
    assert bmff.brands(data) == [b"heic", b"mif1", b"heic", b"miaf"]
    generic = bmff.replace_brand(data, b"heic", b"mif1")
    assert len(generic) == len(data) and bmff.brands(generic) == [
        b"mif1",
        b"mif1",
        b"mif1",
        b"miaf",
    ]
    assert generic[32:] == data[32:]
    assert bmff.brands(b"not a box") == [] and bmff.replace_brand(b"xyz", b"a", b"b") == b"xyz"
