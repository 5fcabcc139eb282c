"""Overlapping crops share the PSNR budget: with every face spending its share, no crop of
the pasted photo is over it; alone, a face keeps all of it. After the encode, the top-up lands
every crop on it together."""

from __future__ import annotations

import numpy as np
import pytest

from grasp_guard.faces.detect import FaceBox
from grasp_guard.faces.regions import (
    extract_crops,
    in_image_mask,
    paste,
    paste_weights,
    plan_regions,
)
from grasp_guard.faces.sharing import budget_shares, top_up_gains

BUDGET_DB = 40.0
SHAPE = (600, 600, 3)
# a group photo: crops of 512, 320, 256 and 128 px, each meeting the others
GROUP = [FaceBox(330, 100, 200, 200), FaceBox(74, 292, 150, 150), FaceBox(194, 122, 128, 128),
         FaceBox(250, 300, 60, 60)]


def _psnr(a: np.ndarray, b: np.ndarray, inside: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b) ** 2)[inside].mean()
    return float(10 * np.log10(255.0 ** 2 / mse))


def paste_spending(shares: np.ndarray, boxes: list[FaceBox]) -> list[float]:
    """Each face's crop PSNR after every face put noise worth its share of the budget
    where the paste keeps it, as the loop does (its MSE over the pixels it owns exactly at
    share × budget)."""
    rng = np.random.default_rng(0)
    photo = np.full(SHAPE, 128, np.uint8)
    regions = plan_regions(SHAPE, boxes)
    crops = extract_crops(photo, regions)
    protected = []
    for crop, weight, share, region in zip(crops, paste_weights(regions), shares, regions):
        noise = rng.standard_normal(crop.shape) * weight[..., None]
        owned = weight > 0
        mse = share * 255.0 ** 2 * 10 ** (-BUDGET_DB / 10)
        noise *= np.sqrt(mse / (noise ** 2)[owned].mean())
        protected.append(np.clip(np.rint(crop + noise), 0, 255).astype(np.uint8))
    out = paste(photo, regions, protected, weighted=False)
    return [_psnr(c, f, in_image_mask(r))
            for c, f, r in zip(crops, extract_crops(out, regions), regions)]


def test_a_face_alone_or_apart_keeps_its_whole_budget() -> None:
    assert budget_shares(plan_regions(SHAPE, GROUP[:1])).tolist() == [1.0]
    apart = plan_regions((2000, 2000, 3), [FaceBox(100, 100, 100, 100),
                                           FaceBox(1500, 1500, 100, 100)])
    assert budget_shares(apart).tolist() == [1.0, 1.0]


def test_shared_budgets_keep_every_crop_of_a_group_photo_within_it() -> None:
    regions = plan_regions(SHAPE, GROUP)
    assert len({r.bucket for r in regions}) == 4  # no two in one batch: no joint optimisation
    shares = budget_shares(regions)
    assert (shares < 1).all() and (shares > 0.5).all()
    whole = paste_spending(np.ones(len(GROUP)), GROUP)
    shared = paste_spending(shares, GROUP)
    assert min(whole) < BUDGET_DB - 0.4  # each spending its all: a crop over the budget
    assert min(shared) >= BUDGET_DB - 0.1
    assert max(shared) <= BUDGET_DB + 0.6  # and the shares are not thrown away


@pytest.mark.parametrize("side", [100, 200])
def test_two_faces_overlapping_alike_get_alike_shares(side: int) -> None:
    boxes = [FaceBox(150, 200, side, side), FaceBox(150 + side, 200, side, side)]
    shares = budget_shares(plan_regions(SHAPE, boxes))
    assert shares[0] == pytest.approx(shares[1], rel=0.05)


def test_top_up_gains_fill_every_crop_together() -> None:
    # Each face's perturbation fills its neighbour's crop too, and the encode keeps half of
    # it: topped up alone, each face would take its crop's whole shortfall and overshoot.
    load = np.array([[1.0, 0.5], [0.2, 1.0]])
    gains = np.ones(2)
    received = 0.5 * load @ gains ** 2
    topped = top_up_gains(load, received, np.zeros(2), gains, 1.0, (0.25, 2.0))
    assert 0.5 * load @ topped ** 2 == pytest.approx([1.0, 1.0], rel=0.01)
    alone = 1.0 / np.sqrt(received)  # each face scaled by its own crop's shortfall
    assert (0.5 * load @ alone ** 2).max() > 1.05


def test_top_up_gains_scale_down_the_faces_filling_a_crop_past_the_budget() -> None:
    load = np.array([[1.0, 1.5], [0.0, 0.5]])  # face 1's perturbation lies mostly in crop 0
    gains = np.ones(2)
    topped = top_up_gains(load, load @ gains ** 2, np.zeros(2), gains, 1.0, (0.25, 2.0))
    assert (load @ topped ** 2).max() <= 1.01
    assert (topped < 1.0).all()


def test_top_up_gains_do_not_starve_a_face_whose_crop_a_neighbour_fills() -> None:
    # A large face's paste fills most of a small face's crop and little of its own: raising
    # it and flooring the small face would spend both budgets, and leave the small face
    # with almost none of its own perturbation.
    load = np.array([[0.9, 0.05], [0.9, 0.4]])
    gains = np.ones(2)
    large, small = top_up_gains(load, load @ gains ** 2, np.zeros(2), gains, 1.0, (0.25, 2.0))
    assert (load @ np.array([large, small]) ** 2).max() <= 1.01
    assert small >= large
    assert load[1] @ np.array([large, small]) ** 2 == pytest.approx(1.0, rel=0.01)  # spent


def test_top_up_gains_leave_out_what_the_encode_alone_costs() -> None:
    # Half the crop's budget is the re-encode's own loss, which no gain scales; of the
    # perturbation the encode keeps a quarter.
    load, baseline = np.array([[1.0]]), np.array([0.5])
    received = baseline + 0.25 * load[0]
    (gain,) = top_up_gains(load, received, baseline, np.ones(1), 1.0, (0.25, 2.0))
    assert 0.5 + 0.25 * gain ** 2 == pytest.approx(1.0, rel=0.01)
