"""How overlapping face crops share the PSNR budget.

In a group photo one face's crop holds pixels that :func:`~grasp_guard.faces.regions.paste`
gives to its neighbours, and their perturbation counts in its PSNR. Optimised each to the full
budget of its own crop, such faces leave the photo over budget, and scaling them down after the
fact spends less than the loop planned for. :func:`budget_shares` gives each face beforehand
the share of its budget that keeps every crop within it when all spend their shares.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from grasp_guard.faces.regions import FaceRegion, _in_image, _owners

_GRID_SIDE = 1024  # the longest side of the grid the paste weights are sampled on
_ROUNDS = 100
_TOLERANCE = 1e-3


def budget_shares(regions: Sequence[FaceRegion], feather: float = 0.5) -> np.ndarray:
    """Each face's share of its crop's MSE budget, in (0, 1]: 1 where no crop overlaps.

    A face spending MSE budget M on its crop puts its perturbation's energy where the paste
    keeps it, in proportion to its paste weight squared. So a share ρ_ki of it lands in crop
    k — the weight² it owns inside crop k over all it owns, times its crop's area over crop
    k's — and crop k's MSE is M (α_k + Σ_i ρ_ki α_i) when each face i spends α_i M. The shares
    start at 1; every face adding to a crop over the budget is scaled down by that crop's
    overload, until none is over.

    Returns:
        (N,) float64 shares, in the order of ``regions``.
    """
    n = len(regions)
    if n < 2:
        return np.ones(n)
    height, width = regions[0].image_hw
    spans = [_in_image(r.crop, height, width) for r in regions]
    step = max(1, max(height, width) // _GRID_SIDE)
    xs = np.arange(min(s[0] for s in spans), max(s[2] for s in spans), step, dtype=np.float64)
    ys = np.arange(min(s[1] for s in spans), max(s[3] for s in spans), step, dtype=np.float64)
    weight, owner = _owners(regions, xs, ys, feather)
    energy = np.where(owner >= 0, weight.astype(np.float64) ** 2, 0.0)
    inside = [((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
              for x0, y0, x1, y1 in spans]
    area = np.array([m.sum() for m in inside], dtype=np.float64).clip(min=1.0)
    owned = np.array([energy[owner == i].sum() for i in range(n)]).clip(min=1e-12)
    # spill[k, i]: crop k's MSE, in budgets, from face i spending its whole budget (i != k)
    spill = np.zeros((n, n))
    for k in range(n):
        for i in range(n):
            if i != k:
                landed = energy[inside[k] & (owner == i)].sum()
                spill[k, i] = landed / owned[i] * area[i] / area[k]
    shares = np.ones(n)
    touches = (spill > 0) | np.eye(n, dtype=bool)  # touches[k, i]: face i adds to crop k
    for _ in range(_ROUNDS):
        load = shares + spill @ shares
        if load.max() <= 1.0 + _TOLERANCE:
            break
        overload = np.where(touches, np.maximum(load, 1.0)[:, None], 1.0).max(axis=0)
        shares = shares / overload
    return shares
