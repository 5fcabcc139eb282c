"""How overlapping face crops share the PSNR budget.

In a group photo one face's crop holds pixels that :func:`~grasp_guard.faces.regions.paste`
gives to its neighbours, and their perturbation counts in its PSNR. Optimised each to the full
budget of its own crop, such faces leave the photo over budget, and scaling them down after the
fact spends less than the loop planned for. :func:`budget_shares` gives each face beforehand
the share of its budget that keeps every crop within it when all spend their shares, and
:func:`top_up_gains` scales the faces' perturbations after the encode so that, as the site
receives them, they spend it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from grasp_guard.faces.regions import FaceRegion, _in_image, _owners

_GRID_SIDE = 1024  # the longest side of the grid the paste weights are sampled on
_EXCESS_PENALTY = 1e4  # how stiffly top_up_gains holds a crop within its budget
_SOLVER_STEPS = 4000  # FISTA's, ample for dozens of faces


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


def top_up_gains(load: np.ndarray, received: np.ndarray, baseline: np.ndarray,
                 gains: np.ndarray, budget_mse: float, bounds: tuple[float, float]) -> np.ndarray:
    """The gains on the faces' perturbations that spend the budget: every face's perturbation
    scaled up as far as the crops it lands in allow, faces sharing a full crop giving way in
    proportion (the squared gains maximise Σ log g², every crop within the budget).

    Crop k's received MSE is modelled as ``baseline_k + retention_k · Σ_i load[k, i] g_i²``:
    ``baseline`` is what the encode alone costs the crop, ``load`` what each face's
    perturbation puts in it before the encode, and ``retention`` the share of that the encode
    kept at ``gains`` (a lossy re-encode quantises part of it away). So no face is starved to
    fill a neighbour's crop, and no crop is left past the budget: each face ends at its
    largest gain or shares a crop that is full. A crop whose encode alone leaves it almost
    no budget holds its faces to a twentieth of it.

    Args:
        load: (N, N) [k, i], the MSE face i's perturbation at gain 1 puts in crop k.
        received: (N,) each crop's MSE as received at ``gains``.
        baseline: (N,) each crop's MSE as received with no perturbation.
        gains: (N,) the gains ``received`` was measured at.
        budget_mse: the MSE each crop may reach.
        bounds: the smallest and largest gain.

    Returns:
        (N,) float64 gains.
    """
    load, gains = np.asarray(load, np.float64), np.asarray(gains, np.float64)
    squares = gains ** 2
    planned = load @ squares
    kept = np.clip(np.asarray(received, np.float64) - baseline, 0.0, None)
    retention = np.divide(kept, planned, out=np.ones_like(planned), where=planned > 0)
    room = np.maximum(budget_mse - np.asarray(baseline, np.float64), budget_mse / 20.0)
    model = retention[:, None] * load / room[:, None]  # crop k's share of its room, per g_i²
    low, high = bounds[0] ** 2, bounds[1] ** 2
    # Accelerated projected gradient (FISTA) on -Σ log s with a stiff penalty on each crop's
    # excess over its room (a crop ends past it by about 1 / _EXCESS_PENALTY of it).
    lipschitz = 1.0 / low ** 2 + _EXCESS_PENALTY * np.linalg.norm(model, 2) ** 2
    ahead, momentum = squares, 1.0
    for _ in range(_SOLVER_STEPS):
        excess = np.clip(model @ ahead - 1.0, 0.0, None)
        grad = -1.0 / ahead + _EXCESS_PENALTY * model.T @ excess
        stepped = np.clip(ahead - grad / lipschitz, low, high)
        following = (1.0 + np.sqrt(1.0 + 4.0 * momentum ** 2)) / 2.0
        ahead = np.clip(stepped + (momentum - 1.0) / following * (stepped - squares), low, high)
        squares, momentum = stepped, following
    return np.sqrt(squares)
