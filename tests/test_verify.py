"""verify: the common grid (an attacker edits the copy the site has, at its size) and the
verdict (judged with the attacker's own framing too)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from grasp_guard.verify import common_grid, verdict


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_a_shrunk_copy_is_compared_with_the_original_shrunk_to_its_size() -> None:
    original, received = _image(120, 90), _image(96, 72, seed=1)
    before, after = common_grid(original, received)
    assert after is received  # the attacker's copy as it is, never upscaled
    np.testing.assert_array_equal(before, cv2.resize(original, (72, 96), interpolation=cv2.INTER_AREA))


def test_a_larger_copy_is_shrunk_onto_the_original() -> None:
    original, received = _image(60, 80), _image(120, 160, seed=1)
    before, after = common_grid(original, received)
    assert before is original and after.shape == original.shape


def test_copies_of_one_size_are_compared_as_they_are() -> None:
    original, received = _image(40, 40), _image(40, 40, seed=1)
    before, after = common_grid(original, received)
    assert before is original and after is received


@pytest.mark.parametrize(("dsr", "framed", "expected"), [
    (1.0, 0.9, "protected"),
    (1.0, 0.06, "partially protected"),  # holds only at our own crop
    (0.5, 1.0, "partially protected"),
    (0.0, 0.0, "unprotected"),
])
def test_the_verdict_is_judged_by_the_worse_framing(dsr: float, framed: float,
                                                     expected: str) -> None:
    assert verdict(dsr, framed) == expected
