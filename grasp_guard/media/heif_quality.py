"""Match the quality of a HEIC: re-encode its decoded pixels until they cost what the source spent.

HEVC records no quality setting, and the quantiser of another encoder (a phone's) does not
map onto x265's rate factor. What compares across encoders is the rate: x265 through libheif
(quality q → CRF (100 − q) / 2) re-encoding a sample of the decoded pixels spends f(q) bytes,
and the estimate is the q whose f(q) is closest to what the source spent on the same pixels.
log f is close to linear in q (the rate halves about every 6 CRF steps, 12 quality points), so
a secant search on log f settles in two to four encodes. The sample is a few whole grid tiles
when the image is a grid (what the source spent on each tile is exact, in ``iloc``), else the
whole image, or for a large single image a few crops with the bytes pro rata to their area.

Decoded pixels have lost the source's coding noise and cost fewer bits than the scene did the
first time, so the match errs towards a higher quality: the protected output loses less, and
may come out a little larger than the source.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from .bmff import ItemIndex

logger = logging.getLogger(__name__)

MIN_QUALITY, MAX_QUALITY = 10, 100
FIRST_GUESS = 80
POINTS_PER_HALVING = 12.0
MAX_TRIALS = 4
_MIN_SLOPE = 1e-3  # log2 bytes per quality point: flatter than this, keep the prior slope
SAMPLE_TILES = 4  # grid tiles (or crops) re-encoded to match the quality
SAMPLE_SIDE = 512  # crop side for large single-item images


def match_quality(
    measure: Callable[[int], int],
    target: int,
    *,
    first: int = FIRST_GUESS,
    trials: int = MAX_TRIALS,
) -> int:
    """The quality whose encoding of the sample costs closest to ``target`` bytes.

    Args:
        measure: bytes of coded image data for the sample encoded at a quality (0–100).
        target: bytes the source spent on the same sample.
        first: the first quality tried.
        trials: the most encodes spent.

    Returns:
        An integer quality in ``MIN_QUALITY``..``MAX_QUALITY``; ties go to the higher one.
    """
    if target <= 0:
        raise ValueError(f"target must be a positive byte count, got {target}")
    tried: dict[int, float] = {}
    slope = 1.0 / POINTS_PER_HALVING
    quality = first
    while quality not in tried and len(tried) < trials:
        tried[quality] = math.log2(max(1, measure(quality)))
        if len(tried) >= 2:
            (q_a, r_a), (q_b, r_b) = sorted(tried.items(), key=lambda kv: abs(kv[0] - quality))[:2]
            if q_a != q_b and (r_b - r_a) / (q_b - q_a) > _MIN_SLOPE:
                slope = (r_b - r_a) / (q_b - q_a)
        step = (math.log2(target) - tried[quality]) / slope
        quality = max(MIN_QUALITY, min(MAX_QUALITY, round(quality + step)))
    best = min(tried, key=lambda q: (abs(tried[q] - math.log2(target)), -q))
    logger.debug("quality matched to %d bytes: %d (tried %s)", target, best, sorted(tried))
    return best


def _evenly(items: list[Any], n: int) -> list[Any]:
    if len(items) <= n:
        return items
    return [items[round(k * (len(items) - 1) / (n - 1))] for k in range(n)]


def _coded_grid(tiling: dict[str, int], shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(rows, columns, tile height, tile width) of the grid in the coded frame.

    pillow-heif reports the tiling of the displayed image (turned with ``irot``): the layout
    that covers the coded pixels is the one kept, None when neither does.
    """
    height, width = shape
    rows, columns = tiling["num_rows"], tiling["num_columns"]
    th, tw = tiling["tile_height"], tiling["tile_width"]
    for grid in ((rows, columns, th, tw), (columns, rows, tw, th)):
        r, c, h, w = grid
        if h > 0 and w > 0 and -(-height // h) == r and -(-width // w) == c:
            return grid
    return None


def sample_regions(
    index: ItemIndex, tiling: dict[str, int] | None, shape: tuple[int, int]
) -> tuple[tuple[tuple[int, int, int, int], ...], int]:
    """Regions of the coded pixels to match the quality on, and the source's bytes for them.

    Whole grid tiles when the primary image is a grid (their coded bytes are exact); else the
    whole image, or for a large one a few crops with the bytes pro rata to their area.
    """
    height, width = shape
    primary = index.primary
    if primary is None:
        return ((0, 0, height, width),), 0
    tiles = index.tiles(primary)
    grid = _coded_grid(tiling, shape) if tiling else None
    if grid and len(tiles) == grid[0] * grid[1]:
        rows, columns, th, tw = grid
        full = [
            (i, r * th, c * tw)
            for i, (r, c) in enumerate((r, c) for r in range(rows) for c in range(columns))
            if (r + 1) * th <= height and (c + 1) * tw <= width
        ]
        if full:
            chosen = _evenly(full, SAMPLE_TILES)
            regions = tuple((top, left, th, tw) for _, top, left in chosen)
            return regions, sum(index.lengths.get(tiles[i], 0) for i, _, _ in chosen)
    total = index.coded_length(primary)
    if height * width <= SAMPLE_TILES * SAMPLE_SIDE**2:
        return ((0, 0, height, width),), total
    side_h, side_w = min(SAMPLE_SIDE, height), min(SAMPLE_SIDE, width)
    regions = tuple(
        (
            (2 * i + 1) * height // 4 - side_h // 2,
            (2 * j + 1) * width // 4 - side_w // 2,
            side_h,
            side_w,
        )
        for i in (0, 1)
        for j in (0, 1)
    )
    return regions, round(total * len(regions) * side_h * side_w / (height * width))
