import pytest

from grasp_guard.media.heif_quality import MAX_QUALITY, MIN_QUALITY, match_quality


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
