"""`grasp-guard bench transfer`: leave-one-out transfer to editors the protection never saw.

For every net J of the pool with real or trained weights, the crops are protected against the
pool minus J (seeded nets may be members, never judges), tuned to a matched PSNR level as the
quality benchmark tunes its rows, and J edits them. Beside each judge and level, two bounds:
GRASP against J itself (white box, the ceiling) and Gaussian noise of the level's PSNR judged
by J the same way (the floor a protection must clear to mean anything against a net it never
saw).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from grasp_guard.benchmarks.eval_set import eval_crops
from grasp_guard.benchmarks.quality import LEVELS, methods, result_row, scores, tuned_run
from grasp_guard.benchmarks.report import Row
from grasp_guard.defense.metrics import batch_psnr, batch_ssim, quantise
from grasp_guard.errors import WeightsUnavailableError
from grasp_guard.models.editor import Editor

logger = logging.getLogger(__name__)

VARIANTS = ("grasp", "grasp+diversity", "grasp+features")


@dataclass(frozen=True)
class Holdout:
    """One row group: the ``ensemble`` protects, the ``judge`` (never among them) edits."""

    judge: Editor
    ensemble: tuple[Editor, ...]

    @property
    def name(self) -> str:
        return f"{'+'.join(e.info.name for e in self.ensemble)} -> {self.judge.info.name}"


def leave_one_out(pool: Sequence[Editor], only: Sequence[str] | None = None) -> list[Holdout]:
    """One holdout per net of ``pool`` with real or trained weights (``only`` those named, when
    given); seeded nets only protect.

    Raises:
        ValueError: no net in the pool can judge, a named judge is not one of them, or a
            judge would have no ensemble.
    """
    judges = [e for e in pool if not e.info.seeded]
    if not judges:
        raise ValueError("the pool holds no net with real or trained weights to judge by")
    if only is not None:
        names = [j.info.name for j in judges]
        if missing := [name for name in only if name not in names]:
            raise ValueError(f"not a judge of this pool: {', '.join(missing)} "
                             f"(judges: {', '.join(names)})")
        judges = [j for j in judges if j.info.name in only]
    holdouts = [Holdout(j, tuple(e for e in pool if e is not j)) for j in judges]
    if any(not h.ensemble for h in holdouts):
        raise ValueError("leave-one-out needs at least two nets in the pool")
    return holdouts


def load_pool(names: Sequence[str]) -> list[Editor]:
    """The named editors with their real (or embedded trained) weights; a net whose weights
    are not in the cache joins with seeded weights, as an ensemble member only."""
    from grasp_guard.models.zoo import load_editor

    pool = []
    for name in names:
        try:
            pool.append(load_editor(name))
        except WeightsUnavailableError:
            logger.warning("%s: no weights in the cache, seeded (a member, never a judge)", name)
            pool.append(load_editor(name, seeded=True))
    return pool


def available_models() -> list[str]:
    """The zoo's nets that load with real or trained weights here: embedded or cached."""
    from grasp_guard.models.weights import WeightsCache
    from grasp_guard.models.zoo import load_zoo

    cache = WeightsCache()
    return [e.name for e in load_zoo().values() if e.embedded or cache.path_for(e.name)]


def gaussian_noise(x: torch.Tensor, psnr: float, seed: int = 0, rounds: int = 4) -> torch.Tensor:
    """``x`` plus white Gaussian noise whose PSNR after clamping and 8-bit rounding is ``psnr``
    dB for every image (the scale corrected ``rounds`` times for what clamping and rounding do).

    Args:
        x: (N, 3, H, W) in [0, 1].
    Returns:
        (N, 3, H, W) on the 8-bit grid.
    """
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.device)
    target = 10.0 ** (-psnr / 10.0)  # the MSE of that PSNR
    clean = x.double()
    scale = math.sqrt(target) / noise.flatten(1).square().mean(dim=1).sqrt()
    for _ in range(rounds):
        noisy = quantise(clean + noise * scale.view(-1, 1, 1, 1))
        mse = (noisy - clean).flatten(1).square().mean(dim=1).clamp_min(1e-20)
        scale = scale * (target / mse).sqrt()
    return quantise(clean + noise * scale.view(-1, 1, 1, 1)).to(x.dtype)


def noise_row(judge: Editor, x: torch.Tensor, level: str) -> Row:
    """Gaussian noise at ``level``'s PSNR, judged by ``judge`` as the protected crops are."""
    noisy = gaussian_noise(x, LEVELS[level])
    return Row(method="noise", model=f"-> {judge.info.name}", level=level, n=len(x),
               psnr=float(batch_psnr(noisy, x).mean()), ssim=float(batch_ssim(noisy, x).mean()),
               **scores(x, noisy, [judge]), iterations=0.0, sec_per_face=0.0,
               budget=10.0 ** (-LEVELS[level] / 20.0),
               note=f"Gaussian noise at the level's PSNR, judged by {judge.info.name}: the floor")


def holdout_row(holdout: Holdout, variant: str, x: torch.Tensor, level: str, calib_n: int,
                steps: int | None) -> Row:
    """``variant`` tuned to ``level`` against the ensemble, judged by the held-out net; the
    note gives each member's white-box DSR (CMUA) on the same images."""
    method = methods(steps)[variant]
    run = tuned_run(method, holdout.ensemble, x, level, calib_n)
    members = ", ".join(
        f"{e.info.name}{' (seeded)' if e.info.seeded else ''} "
        f"{scores(x, run.result.images, [e])['dsr_cmua']:.2f}" for e in holdout.ensemble)
    note = f"white-box DSR on the members: {members}; {run.note(method)}"
    return result_row(variant, holdout.name, level, x, run.result, [holdout.judge], run.seconds,
                run.budget, note)


def ceiling_row(judge: Editor, x: torch.Tensor, level: str, calib_n: int,
                steps: int | None) -> Row:
    """GRASP tuned to ``level`` against the judge itself: the white-box DSR no transfer can be
    expected to pass, so a held-out figure reads against what the judge's fragility allows."""
    method = methods(steps)["grasp"]
    run = tuned_run(method, [judge], x, level, calib_n)
    return result_row("white-box", f"{judge.info.name} -> {judge.info.name}", level, x,
                      run.result, [judge], run.seconds, run.budget,
                      f"GRASP against the judge itself: the ceiling; {run.note(method)}")


def transfer_table(pool: Sequence[Editor], n: int, resolution: int, levels: Sequence[str],
                   variants: Sequence[str] = VARIANTS, calib_n: int = 4, steps: int | None = 40,
                   judges: Sequence[str] | None = None,
                   progress: Callable[[Row, list[Row]], None] | None = None) -> list[Row]:
    """Every holdout of ``pool`` (with ``judges`` named, theirs only) at every level: the
    variants' rows, then the white-box ceiling and the noise floor.

    Raises:
        ValueError: an unknown level or variant, or a pool :func:`leave_one_out` refuses.
    """
    unknown = [lv for lv in levels if lv not in LEVELS] + [
        v for v in variants if v not in methods(steps)]
    if unknown:
        raise ValueError(f"unknown level or variant: {', '.join(unknown)} "
                         f"(levels: {', '.join(LEVELS)}; variants: {', '.join(methods(steps))})")
    holdouts = leave_one_out(pool, judges)
    x = eval_crops(n, resolution)
    rows: list[Row] = []
    for level in levels:
        for holdout in holdouts:
            for variant in variants:
                rows.append(holdout_row(holdout, variant, x, level, min(calib_n, n), steps))
                if progress:
                    progress(rows[-1], rows)
            for bound in (ceiling_row(holdout.judge, x, level, min(calib_n, n), steps),
                          noise_row(holdout.judge, x, level)):
                rows.append(bound)
                if progress:
                    progress(rows[-1], rows)
    return rows


def about(pool: Sequence[Editor], n: int, resolution: int) -> str:
    """The notes under the table: the faces, n, and which nets are real, trained or seeded."""
    def kind(e: Editor) -> str:
        if e.info.seeded:
            return "seeded random weights (a member only, never a judge)"
        if e.info.reference:
            return "trained in this repository (a stand-in, not a real deepfake model)"
        return "real trained weights"

    nets = "; ".join(f"{e.info.name}: {kind(e)}" for e in pool)
    return (f"Faces: the first {n} crops of the real-face set (grasp_guard/benchmarks/faces/, "
            f"derived from shared/data/faces), at {resolution} px; each net sees them through "
            f"its resize. n = {n} per row. Nets: {nets}. Rows `A+B -> J`: protected against A "
            "and B together (J left out), tuned to the level, DSR on J. `noise -> J`: Gaussian "
            "noise at the level's PSNR judged by J, the floor a row must clear to mean "
            "anything. `J -> J` (white-box): GRASP against J itself at the level, the ceiling "
            "a held-out row can be expected to reach. `grasp+diversity`: the loop with "
            "input_diversity 0.2 (every step a random whole-pixel shift, or a zoom in "
            "[0.8, 1.2] and shift; the presets' own is 0.10). "
            "`grasp+features`: the loop with "
            "feature_weight 1 (the members' encoder activations and channel statistics pushed "
            "from the clean ones, beside their outputs).")
