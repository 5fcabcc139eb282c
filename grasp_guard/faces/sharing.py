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


def budget_shares(regions: Sequence[FaceRegion], feather: float = 0.5) -> np.ndarray:
    """Each face's share of its MSE budget, in (0, 1]: 1 where no crop overlaps another.

    The loop holds a face's perturbation to the budget M over the pixels its paste keeps (its
    own: :func:`~grasp_guard.faces.regions.paste_weights` > 0), and puts its energy there in
    proportion to the paste weight squared. So crop k, of area A_k, owning N_k of its pixels,
    receives M (α_k N_k + Σ_i α_i N_i s_ki) / A_k when each face i spends α_i M, s_ki being
    the share of face i's weight² that lies inside crop k. One pass divides every face adding
    to an over-full crop by that crop's overload (the largest of them): each crop's load being
    linear in the shares, every crop is then within budget — conservatively, as a face barely
    touching a crop is cut as much as the crop's main guest.

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
    owned = owner >= 0
    energy = np.where(owned, weight.astype(np.float64) ** 2, 0.0)
    pixels = np.bincount(owner[owned], minlength=n).astype(np.float64)
    total = np.bincount(owner[owned], energy[owned], minlength=n).clip(min=1e-12)
    load_per_share = np.zeros((n, n))  # [k, i]: crop k's MSE, in budgets, from face i's all
    for k, (x0, y0, x1, y1) in enumerate(spans):
        rows = slice(*np.searchsorted(ys, (y0, y1)))
        cols = slice(*np.searchsorted(xs, (x0, x1)))
        who, what = owner[rows, cols], energy[rows, cols]
        area = max(who.size, 1)
        inside = np.bincount(who[who >= 0], what[who >= 0], minlength=n)
        load_per_share[k] = pixels * inside / total / area
        load_per_share[k, k] = pixels[k] / area  # all of face k's own energy is in its crop
    load = load_per_share.sum(axis=1)
    overload = np.where(load_per_share > 0, np.maximum(load, 1.0)[:, None], 1.0).max(axis=0)
    return 1.0 / overload
