"""Per-sample resolution of conflicts between the defense and the visual-quality gradients.

GRASP (Li et al., arXiv 2510.01699) projects a visual gradient off the defense gradient when
the two point against each other, so that a quality step never undoes defense to first order;
optionally the defense gradient is projected off the visual one as well (the PCGrad rule of
Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020). Every inner product is
taken per sample: faces batched together never influence each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from grasp_guard.defense.losses import gaussian_blur, gaussian_kernel1d


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample inner product of (B, ...) tensors, shaped (B, 1, ..., 1) to broadcast."""
    d = (a * b).flatten(1).sum(dim=1)
    return d.view(-1, *([1] * (a.ndim - 1)))


def project_off(g: torch.Tensor, onto: torch.Tensor) -> torch.Tensor:
    """Per sample, remove from ``g`` its component along ``onto`` when ⟨g, onto⟩ < 0.

    Args:
        g, onto: (B, ...) gradients of one shape.
    Returns:
        (B, ...) ``g − ⟨g, onto⟩/‖onto‖² · onto`` for conflicting samples, ``g`` elsewhere;
        afterwards ⟨result, onto⟩ ≥ 0 (up to rounding) for every sample.
    """
    dot = _dot(g, onto)
    norm2 = _dot(onto, onto)
    conflict = (dot < 0) & (norm2 > 0)
    coef = torch.where(conflict, dot / norm2.clamp_min(torch.finfo(g.dtype).tiny), 0.0)
    return g - coef * onto


def resolve_conflicts(
    g_d: torch.Tensor,
    visuals: Sequence[torch.Tensor],
    project_visual: bool = True,
    cross: bool = False,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """GRASP.md's conflict loop over the visual gradients, in order, per sample.

    For each visual gradient g_v (as ascent directions): if ``project_visual``, g_v is
    projected off the current g_d when they conflict; if ``cross``, g_d is projected off g_v
    as it was *before* its own projection (after it ⟨g_d, g_v⟩ is 0 by construction and the
    cross test would never fire).

    Args:
        g_d: (B, ...) defense gradient.
        visuals: visual-quality gradients, each shaped like ``g_d``.
        project_visual: project visual gradients off the defense gradient.
        cross: project the defense gradient off conflicting visual gradients.
    Returns:
        The resolved defense gradient and the resolved visual gradients, in order.
    """
    resolved = []
    for g_v in visuals:
        g_v_new = project_off(g_v, g_d) if project_visual else g_v
        if cross:
            g_d = project_off(g_d, g_v)
        resolved.append(g_v_new)
    return g_d, resolved


def smooth(g: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of (B, C, H, W) gradients; ``size`` taps of σ ``sigma``."""
    return gaussian_blur(g, gaussian_kernel1d(size, sigma, g.dtype, g.device))
