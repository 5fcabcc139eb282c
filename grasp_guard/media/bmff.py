"""ISO-BMFF (HEIF, AVIF) containers: walk boxes and index the items of the ``meta`` box.

Only what the codec needs is read: which item is primary, each item's type and coded
length (``iloc``), the references between items (``iref``: grid tiles, thumbnails,
auxiliary images, metadata) and each item's properties in association order (``ipma``).
Nothing here decodes pixels.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

_FULL_BOX = 4  # version (1 byte) and flags (3 bytes)
FREE_BOX_MIN = 8  # size + type of an empty top-level "free" box


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """Yield (type, payload start, payload end) of the boxes in ``data[start:end]``.

    Stops at the first box whose size runs past ``end`` (a truncated file).
    """
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def top_level_types(data: bytes) -> list[bytes]:
    """The types of the file's top-level boxes, in order."""
    return [kind for kind, _, _ in boxes(data)]


def brands(data: bytes) -> list[bytes]:
    """The major brand then the compatible brands of the leading ``ftyp`` box (empty: none)."""
    first = next(boxes(data), None)
    if first is None or first[0] != b"ftyp" or first[2] - first[1] < 8:
        return []
    _, lo, hi = first
    return [data[lo : lo + 4]] + [data[i : i + 4] for i in range(lo + 8, hi - 3, 4)]


def pad_with_free_box(data: bytes, n: int) -> bytes:
    """``data`` followed by a top-level ``free`` box of ``n`` ≥ ``FREE_BOX_MIN`` bytes
    (readers skip it: the size-mode padding of HEIF and AVIF files)."""
    return data + struct.pack(">I4s", n, b"free") + bytes(n - FREE_BOX_MIN)


def replace_brand(data: bytes, old: bytes, new: bytes) -> bytes:
    """``data`` with every ``old`` brand of its ``ftyp`` box named ``new`` (same length)."""
    first = next(boxes(data), None)
    if first is None or first[0] != b"ftyp":
        return data
    _, lo, hi = first
    ftyp = bytearray(data[lo:hi])
    for i in [0, *range(8, len(ftyp) - 3, 4)]:
        if ftyp[i : i + 4] == old:
            ftyp[i : i + 4] = new
    return data[:lo] + bytes(ftyp) + data[hi:]


@dataclass(frozen=True)
class ItemIndex:
    """The items of a ``meta`` box.

    Attributes:
        primary: the primary item's id (``pitm``), or None.
        types: item id → item type (``hvc1``, ``grid``, ``Exif``, ``mime``...).
        lengths: item id → total length of its extents (its coded bytes).
        data_end: the end of the furthest extent stored in the file itself (past the
            file's end: truncated).
        references: reference type (``dimg``, ``thmb``, ``auxl``, ``cdsc``...) → from id →
            to ids, in file order.
        properties: item id → its properties (type, payload) in association order.
        extents: item id → the (file offset, length) of each of its extents, in order, for
            the items stored in the file or in the ``idat`` box (construction methods 0, 1).
    """

    primary: int | None
    types: dict[int, bytes]
    lengths: dict[int, int]
    data_end: int
    references: dict[bytes, dict[int, tuple[int, ...]]]
    properties: dict[int, tuple[tuple[bytes, bytes], ...]]
    extents: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)

    def tiles(self, item: int) -> tuple[int, ...]:
        """The tiles of a ``grid`` item, in raster order (empty for other items)."""
        return (
            self.references.get(b"dimg", {}).get(item, ())
            if self.types.get(item) == b"grid"
            else ()
        )

    def coded_length(self, item: int) -> int:
        """Bytes of coded image data of ``item`` (a grid: the sum of its tiles)."""
        tiles = self.tiles(item)
        return sum(self.lengths.get(t, 0) for t in tiles) if tiles else self.lengths.get(item, 0)


class _Reader:
    """Big-endian fields read in sequence from ``data[pos:end]``."""

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def uint(self, size: int) -> int:
        if size == 0:
            return 0
        if self.pos + size > self.end:
            raise ValueError(f"box field runs past its box at offset {self.pos}")
        value = int.from_bytes(self.data[self.pos : self.pos + size], "big")
        self.pos += size
        return value

    def full_box(self) -> tuple[int, int]:
        return self.uint(1), self.uint(3)


def _children(data: bytes, start: int, end: int) -> dict[bytes, tuple[int, int]]:
    """The first child box of each type: type → (payload start, payload end)."""
    found: dict[bytes, tuple[int, int]] = {}
    for kind, lo, hi in boxes(data, start, end):
        found.setdefault(kind, (lo, hi))
    return found


def _primary(data: bytes, span: tuple[int, int]) -> int:
    r = _Reader(data, *span)
    version, _ = r.full_box()
    return r.uint(2 if version == 0 else 4)


def _types(data: bytes, span: tuple[int, int]) -> dict[int, bytes]:
    r = _Reader(data, *span)
    version, _ = r.full_box()
    r.uint(2 if version == 0 else 4)  # entry count: the boxes that follow say it
    types = {}
    for kind, lo, hi in boxes(data, r.pos, span[1]):
        if kind != b"infe":
            continue
        e = _Reader(data, lo, hi)
        version, _ = e.full_box()
        if version < 2:
            continue  # pre-HEIF item entries carry no item type
        item = e.uint(2 if version == 2 else 4)
        e.uint(2)  # protection index
        types[item] = e.uint(4).to_bytes(4, "big")
    return types


def _locations(data: bytes, span: tuple[int, int], idat: int | None
               ) -> tuple[dict[int, int], int, dict[int, tuple[tuple[int, int], ...]]]:
    """(item id → coded length, end of the furthest extent in the file, item id → its
    extents in the file) from ``iloc``; ``idat``: where that box's payload starts."""
    r = _Reader(data, *span)
    version, _ = r.full_box()
    if version > 2:
        raise ValueError(f"unknown iloc version {version}")
    sizes = r.uint(1)
    offset_size, length_size = sizes >> 4, sizes & 15
    sizes = r.uint(1)
    base_size, index_size = sizes >> 4, (sizes & 15 if version in (1, 2) else 0)
    lengths, data_end, extents = {}, 0, {}
    for _ in range(r.uint(2 if version < 2 else 4)):
        item = r.uint(2 if version < 2 else 4)
        method = 0 if version == 0 else r.uint(2) & 15  # 0: file offsets, 1: in idat
        r.uint(2)  # data reference index
        base = r.uint(base_size)
        total, found = 0, []
        for _ in range(r.uint(2)):
            r.uint(index_size)
            offset, length = r.uint(offset_size), r.uint(length_size)
            total += length
            if method == 0:
                data_end = max(data_end, base + offset + length)
                found.append((base + offset, length))
            elif method == 1 and idat is not None:
                found.append((idat + base + offset, length))
        lengths[item] = total
        if found:
            extents[item] = tuple(found)
    return lengths, data_end, extents


def _references(data: bytes, span: tuple[int, int]) -> dict[bytes, dict[int, tuple[int, ...]]]:
    r = _Reader(data, *span)
    version, _ = r.full_box()
    id_size = 2 if version == 0 else 4
    refs: dict[bytes, dict[int, tuple[int, ...]]] = {}
    for kind, lo, hi in boxes(data, r.pos, span[1]):
        e = _Reader(data, lo, hi)
        source = e.uint(id_size)
        targets = tuple(e.uint(id_size) for _ in range(e.uint(2)))
        by_source = refs.setdefault(kind, {})
        by_source[source] = by_source.get(source, ()) + targets
    return refs


def _properties(data: bytes, span: tuple[int, int]) -> dict[int, tuple[tuple[bytes, bytes], ...]]:
    inside = _children(data, *span)
    if b"ipco" not in inside or b"ipma" not in inside:
        return {}
    pool = [(kind, data[lo:hi]) for kind, lo, hi in boxes(data, *inside[b"ipco"])]
    r = _Reader(data, *inside[b"ipma"])
    version, flags = r.full_box()
    found: dict[int, tuple[tuple[bytes, bytes], ...]] = {}
    for _ in range(r.uint(4)):
        item = r.uint(2 if version < 1 else 4)
        indices = [r.uint(2 if flags & 1 else 1) for _ in range(r.uint(1))]
        mask = 0x7FFF if flags & 1 else 0x7F
        found[item] = tuple(pool[i - 1] for i in (x & mask for x in indices) if 0 < i <= len(pool))
    return found


def read_items(data: bytes) -> ItemIndex:
    """Index the items of the file's top-level ``meta`` box.

    Raises:
        ValueError: no ``meta`` box, or one of its boxes is malformed.
    """
    meta = next(((lo, hi) for kind, lo, hi in boxes(data) if kind == b"meta"), None)
    if meta is None:
        raise ValueError("no 'meta' box: not a HEIF still image")
    inside = _children(data, meta[0] + _FULL_BOX, meta[1])
    idat = inside[b"idat"][0] if b"idat" in inside else None
    lengths, data_end, extents = (_locations(data, inside[b"iloc"], idat) if b"iloc" in inside
                                  else ({}, 0, {}))
    return ItemIndex(
        primary=_primary(data, inside[b"pitm"]) if b"pitm" in inside else None,
        types=_types(data, inside[b"iinf"]) if b"iinf" in inside else {},
        lengths=lengths,
        data_end=data_end,
        references=_references(data, inside[b"iref"]) if b"iref" in inside else {},
        properties=_properties(data, inside[b"iprp"]) if b"iprp" in inside else {},
        extents=extents,
    )
