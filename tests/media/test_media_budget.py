import pytest

from grasp_guard.errors import SizeBudgetError
from grasp_guard.media.budget import Padding, fit

PAD = Padding(minimum=lambda _: 4, pad=lambda d, n: d + b"#" * n)


def _lossy(sizes: list[int], calls: list[int]):
    def render(level: int) -> bytes:
        calls.append(level)
        return b"x" * sizes[level]

    return render


SIZES = [120, 110, 100, 90, 80, 70, 60, 50]


@pytest.mark.parametrize(
    ("mode", "target", "expected"),
    [
        ("any", 10, 120),
        ("max", 200, 120),
        ("max", 100, 100),
        ("max", 95, 90),
        ("max", 50, 50),
        ("exact", 120, 120),
        ("exact", 100, 100),
        ("exact", 103, 103),
        ("exact", 93, 93),
    ],
)
def test_fit_picks_the_most_faithful_level_that_fits(mode: str, target: int, expected: int) -> None:
    calls: list[int] = []
    out = fit(
        _lossy(SIZES, calls),
        len(SIZES),
        size_mode=mode,
        target=target,
        padding=PAD,
        lossless=False,
        what="X",
    )
    assert len(out) == expected
    assert len(calls) == len(set(calls)) <= 5  # bisection, each level rendered once


def test_exact_keeps_room_for_the_smallest_padding() -> None:
    out = fit(
        _lossy(SIZES, []),
        len(SIZES),
        size_mode="exact",
        target=102,
        padding=PAD,
        lossless=False,
        what="X",
    )
    assert len(out) == 102 and out.startswith(b"x" * 90)


@pytest.mark.parametrize(("mode", "target"), [("max", 49), ("exact", 53)])
def test_fit_raises_when_nothing_fits(mode: str, target: int) -> None:
    with pytest.raises(SizeBudgetError, match="smallest encoding tried is 50 bytes"):
        fit(
            _lossy(SIZES, []),
            len(SIZES),
            size_mode=mode,
            target=target,
            padding=PAD,
            lossless=False,
            what="X",
        )


def test_lossless_levels_are_scanned_in_order() -> None:
    calls: list[int] = []
    out = fit(
        _lossy([100, 120, 90, 80], calls),
        4,
        size_mode="max",
        target=95,
        padding=PAD,
        lossless=True,
        what="X",
    )
    assert len(out) == 90 and calls == [0, 1, 2]


def test_unknown_mode() -> None:
    with pytest.raises(ValueError):
        fit(_lossy(SIZES, []), 1, size_mode="tiny", target=1, padding=PAD, lossless=False, what="X")  # type: ignore[arg-type]
