import pytest

from grasp_guard.media.bmff import ItemIndex
from grasp_guard.media.heif_quality import (
    MAX_QUALITY,
    MIN_QUALITY,
    match_quality,
    sample_regions,
)


def _rate(points_per_halving: float, base: float = 5000.0):
    calls: list[int] = []

    def measure(quality: int) -> int:
        calls.append(quality)
        return round(base * 2 ** ((quality - 50) / points_per_halving))

    return measure, calls


@pytest.mark.parametrize("source", [25, 50, 63, 80, 94])
@pytest.mark.parametrize("points_per_halving", [8.0, 12.0, 20.0])
def test_finds_the_quality_of_a_smooth_rate_curve(source: int, points_per_halving: float) -> None:
    measure, calls = _rate(points_per_halving)
    target = measure(source)
    calls.clear()
    assert abs(match_quality(measure, target) - source) <= 1
    assert len(calls) <= 4


def test_clamps_to_the_range_and_never_measures_twice() -> None:
    measure, calls = _rate(12.0)
    assert match_quality(measure, 1) == MIN_QUALITY
    assert len(calls) == len(set(calls))
    assert match_quality(measure, 10**9) == MAX_QUALITY


def test_a_flat_curve_keeps_the_prior_slope() -> None:
    assert match_quality(lambda q: 1000, 4000) == MAX_QUALITY
    assert MIN_QUALITY <= match_quality(lambda q: 1000, 1000) <= MAX_QUALITY


def test_ties_go_to_the_higher_quality() -> None:
    # 1000 and 4000 bytes are equally far from 2000 in log-rate: the higher quality wins.
    assert match_quality(lambda q: 4000 if q > 80 else 1000, 2000) > 80


def test_target_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        match_quality(lambda q: 100, 0)


def _grid_index(rows: int, columns: int) -> ItemIndex:
    tiles = tuple(range(2, 2 + rows * columns))
    return ItemIndex(
        primary=1,
        types={1: b"grid", **{t: b"hvc1" for t in tiles}},
        lengths={1: 8, **{t: 100 * t for t in tiles}},
        data_end=0,
        references={b"dimg": {1: tiles}},
        properties={},
    )


def test_samples_are_whole_tiles_of_the_coded_frame() -> None:
    # A 300-high, 200-wide coded grid of 64-px tiles (5 rows, 4 columns), turned a quarter
    # for display: pillow-heif reports 4 rows and 5 columns; the coded layout is the one used.
    tiling = {"num_rows": 4, "num_columns": 5, "tile_height": 64, "tile_width": 64}
    regions, spent = sample_regions(_grid_index(5, 4), tiling, (300, 200))
    assert len(regions) == 4 and all(h == w == 64 for _, _, h, w in regions)
    assert all(top + 64 <= 300 and left + 64 <= 200 for top, left, _, _ in regions)
    tile_of = {(top // 64) * 4 + left // 64: (top, left) for top, left, _, _ in regions}
    assert spent == sum(100 * (2 + i) for i in tile_of)


def test_a_single_image_is_sampled_whole_or_in_crops_pro_rata() -> None:
    single = ItemIndex(1, {1: b"hvc1"}, {1: 40_000}, 0, {}, {})
    assert sample_regions(single, None, (600, 800)) == (((0, 0, 600, 800),), 40_000)
    regions, spent = sample_regions(single, None, (3000, 4000))
    assert len(regions) == 4 and spent == round(40_000 * 4 * 512 * 512 / (3000 * 4000))
