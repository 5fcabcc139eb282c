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
from typing import NamedTuple

import numpy as np

from grasp_guard.faces.regions import FaceRegion, _in_image, _owners

_GRID_SIDE = 1024  # the longest side of the grid the paste weights are sampled on
_EXCESS_PENALTY = 1e4  # how stiffly top_up_gains holds a crop within its budget
_SOLVER_STEPS = 4000  # FISTA's, ample for dozens of faces
KEEP_MARGIN = 1.5  # the margin a face giving way keeps, by the model of give_way
GIVING_WEIGHT = 0.05  # the claim on a shared crop of a face that gives way


class Claims(NamedTuple):
    """What each face may take of the crops it lands in (:func:`top_up_gains`): its weight
    w in Σ w log g², and its smallest and largest gain; each (N,)."""

    weights: np.ndarray
    floors: np.ndarray
    ceilings: np.ndarray


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
                 gains: np.ndarray, budget_mse: float, bounds: tuple[float, float],
                 claims: Claims | None = None) -> np.ndarray:
    """The gains on the faces' perturbations that spend the budget: every face's perturbation
    scaled up as far as the crops it lands in allow, faces sharing a full crop giving way in
    proportion to their claims (the squared gains maximise Σ w log g², every crop within the
    budget).

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
        claims: each face's weight and gain range within ``bounds``, as :func:`give_way`
            sets them; by default w = 1 and ``bounds`` for every face.

    Returns:
        (N,) float64 gains.
    """
    load, gains = np.asarray(load, np.float64), np.asarray(gains, np.float64)
    weights, floors, ceilings = claims if claims is not None else (1.0, *bounds)
    squares = gains ** 2
    planned = load @ squares
    kept = np.clip(np.asarray(received, np.float64) - baseline, 0.0, None)
    retention = np.divide(kept, planned, out=np.ones_like(planned), where=planned > 0)
    room = np.maximum(budget_mse - np.asarray(baseline, np.float64), budget_mse / 20.0)
    model = retention[:, None] * load / room[:, None]  # crop k's share of its room, per g_i²
    ones = np.ones(len(gains))
    weights = weights * ones
    high = np.clip(ceilings, bounds[0], bounds[1]) ** 2 * ones
    low = np.minimum(np.clip(floors, bounds[0], bounds[1]) ** 2, high)
    squares = np.clip(squares, low, high)
    # Accelerated projected gradient (FISTA) on -Σ w log s with a stiff penalty on each crop's
    # excess over its room (a crop ends past it by about 1 / _EXCESS_PENALTY of it).
    lipschitz = np.max(weights / low ** 2) + _EXCESS_PENALTY * np.linalg.norm(model, 2) ** 2
    ahead, momentum = squares, 1.0
    for _ in range(_SOLVER_STEPS):
        excess = np.clip(model @ ahead - 1.0, 0.0, None)
        grad = -weights / ahead + _EXCESS_PENALTY * model.T @ excess
        stepped = np.clip(ahead - grad / lipschitz, low, high)
        following = (1.0 + np.sqrt(1.0 + 4.0 * momentum ** 2)) / 2.0
        ahead = np.clip(stepped + (momentum - 1.0) / following * (stepped - squares), low, high)
        squares, momentum = stepped, following
    return np.sqrt(squares)


def give_way(margins: np.ndarray, gains: np.ndarray, load: np.ndarray,
             bounds: tuple[float, float]) -> Claims | None:
    """Claims for :func:`top_up_gains` that move budget from faces disrupted with room to
    spare to the faces not yet disrupted whose crops they land in.

    A face's margin is its weakest judged edit's distortion over the success threshold (> 1:
    disrupted at every edit judged). A face past ``KEEP_MARGIN`` that lands in a crop a face
    not yet disrupted lands in gives way: it claims with ``GIVING_WEIGHT``, down to the gain
    that would keep it at ``KEEP_MARGIN`` were distortion to grow as the perturbation's energy
    (g²) — a model only: the caller judges the result. The faces not yet disrupted claim
    fully, up to the largest gain; every other face keeps at most its gain.

    Args:
        margins: (N,) each face's margin at ``gains``.
        gains: (N,) the gains the margins were measured at.
        load: (N, N) [k, i], what face i's perturbation puts in crop k (> 0 where they meet).
        bounds: the smallest and largest gain.

    Returns:
        The claims, or ``None`` where no face can give way to one that may still grow.
    """
    margins, gains = np.asarray(margins, np.float64), np.asarray(gains, np.float64)
    short = (margins <= 1.0) & (gains < bounds[1])
    meets = np.asarray(load) > 0
    with_short = meets[:, short].any(axis=1)  # crops that a face not yet disrupted lands in
    giving = (margins > KEEP_MARGIN) & meets[with_short].any(axis=0)
    if not giving.any():
        return None
    kept = gains * np.sqrt(KEEP_MARGIN / margins.clip(min=KEEP_MARGIN))
    return Claims(weights=np.where(giving, GIVING_WEIGHT, 1.0),
                  floors=np.where(giving, kept, bounds[0]).clip(bounds[0], bounds[1]),
                  ceilings=np.where(short, bounds[1], gains))
