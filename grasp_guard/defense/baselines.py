"""The baselines GRASP is compared with, run through the same loop as GRASP itself.

- :func:`pgd`: the PGD of Ruiz et al., "Disrupting Deepfakes: Adversarial Attacks Against
  Conditional Image Translation Networks and Facial Manipulation Systems", ECCV-W 2020: in
  the editor's [-1, 1] space, start at x + U(−ε, ε), then k steps of a·sign(∇) on
  MSE(G(x_adv, c), G(x, c)), clipped to ±ε around x and to [-1, 1]. On the [0, 1] scale of
  the loop this is ε/2 and a/2 (the map x ↦ 2x − 1 scales every difference by 2).
- :func:`pgd_l2_config`: the same attack on an L2 ball, the ball of a PSNR: the baseline at
  matched PSNR where L∞ PGD's whole 8-bit steps cannot land on the level.
- :func:`weighted_sum`: GRASP's three losses summed with their weights, with no projection
  and no smoothing: the ablation that isolates the projection.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from grasp_guard.defense.config import GraspConfig
from grasp_guard.defense.grasp import DefenseResult, Transform, grasp
from grasp_guard.defense.metrics import SUCCESS_THRESHOLD, expand_conditions
from grasp_guard.models.editor import Editor


def pgd_config(eps: float = 0.05, alpha: float = 0.01, steps: int = 10, seed: int = 0,
               threshold: float = SUCCESS_THRESHOLD) -> GraspConfig:
    """The loop's settings that make it Ruiz et al.'s PGD (ε, a on the [-1, 1] scale)."""
    return GraspConfig(
        eps=eps / 2, alpha=alpha / 2, steps=steps, lambda_ssim=0.0, lambda_lf=0.0,
        normalize=False, smoothing="none", projection=False, cross_projection=False,
        step_rule="sign", init="uniform", init_scale=1.0, early_stop=False,
        objective="mean", masked_loss=False, psnr_budget=None,
        success_threshold=threshold, success_metric="both", psnr_floor=None, ssim_floor=None,
        seed=seed,
    )


def pgd_l2_config(psnr: float, steps: int, seed: int = 0,
                  threshold: float = SUCCESS_THRESHOLD) -> GraspConfig:
    """L2 PGD on the ball of ``psnr`` dB: PGD's mean MSE loss and uniform start, steps of RMS
    budget/4 along the gradient, δ scaled back into the ball after each (never up onto it)."""
    budget = 10.0 ** (-psnr / 20.0)
    return GraspConfig(
        eps=1.0, alpha=budget / 4, steps=steps, lambda_ssim=0.0, lambda_lf=0.0,
        normalize=False, smoothing="none", projection=False, cross_projection=False,
        step_rule="l2", init="uniform", init_scale=min(1.0, 2 * budget), early_stop=False,
        objective="mean", masked_loss=False, psnr_budget=psnr, spend_budget=False,
        success_threshold=threshold, success_metric="both", psnr_floor=None, ssim_floor=None,
        seed=seed,
    )


def pgd(
    x: torch.Tensor,
    editors: Sequence[Editor],
    eps: float = 0.05,
    alpha: float = 0.01,
    steps: int = 10,
    per_edit: bool = True,
    transform: Transform | None = None,
    conditions: Sequence[torch.Tensor | None] | None = None,
    seed: int = 0,
) -> DefenseResult:
    """PGD of Disrupting Deepfakes; ``eps`` and ``alpha`` on the editor's [-1, 1] scale.

    Args:
        x: (N, 3, H, W) crops in [0, 1] at their own resolution.
        editors: surrogate editors.
        eps, alpha, steps: budget, step size and number of steps (0.05, 0.01, 10 published).
        per_edit: ``True`` is the literature protocol, one attack per (image, edit); ``False``
            one perturbation per image against every editor and edit jointly (mean loss).
        transform: optional differentiable transform applied before each editor's resize.
        conditions: per editor, (E, C) or (N, E, C) edits; the editor's own when ``None``.
        seed: seed of the random start.
    Returns:
        Quantised protected images. With ``per_edit`` the images are (N, E, 3, H, W) and the
        per-sample fields (N, E), E running over every editor's edits in order; the time
        is the sum over editors.
    """
    config = pgd_config(eps, alpha, steps, seed)
    if not per_edit:
        return grasp(x, editors, config, transform, conditions)
    n = x.shape[0]
    parts = []
    for i, editor in enumerate(editors):
        given = conditions[i] if conditions is not None else None
        cond = expand_conditions(editor.conditions() if given is None else given, n)
        e, c = cond.shape[1:]
        single = cond.reshape(n * e, 1, c)
        r = grasp(x.repeat_interleave(e, dim=0), [editor], config, transform, [single])
        parts.append(r)

    def joined(name: str) -> torch.Tensor:
        return torch.cat([getattr(r, name).view(n, -1, *getattr(r, name).shape[1:])
                          for r in parts], dim=1)

    return DefenseResult(
        images=joined("images"),
        iterations=joined("iterations"),
        stopped=joined("stopped"),
        psnr=joined("psnr"),
        ssim=joined("ssim"),
        distortion=joined("distortion"),
        dsr=joined("dsr"),
        seconds=sum(r.seconds for r in parts),
    )


def weighted_sum(
    x: torch.Tensor,
    editors: Sequence[Editor],
    config: GraspConfig,
    transform: Transform | None = None,
    conditions: Sequence[torch.Tensor | None] | None = None,
) -> DefenseResult:
    """GRASP's losses summed with ``config``'s weights: no projection, no smoothing."""
    plain = config.replace(projection=False, cross_projection=False, smoothing="none")
    return grasp(x, editors, plain, transform, conditions)
