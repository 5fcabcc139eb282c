"""Feature-level defense: push the editors' intermediate activations away from the clean ones.

A perturbation that only moves the output of the surrogates can exploit their last layers, which
an editor never seen does not share; the early encoder features (down-sampled stem, first
residual blocks) are much alike across image-to-image nets, so moving them, and their
normalisation statistics, is the candidate for transfer (after the feature-level attacks of
Inkawhich et al., "Feature Space Perturbations Yield More Transferable Adversarial Examples",
CVPR 2019, and the encoder losses of the anti-deepfake line of work). Each editor names its
layers (:meth:`~grasp_guard.models.editor.Editor.feature_layers`); a :class:`FeatureTap` records
their outputs during the loop's own forward passes, so the term costs one extra forward of the
clean crops without gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Self

import torch
from torch.utils.hooks import RemovableHandle

from grasp_guard.defense.metrics import run_edits
from grasp_guard.models.editor import Editor

_EPS = 1e-8


class FeatureTap:
    """Within ``with``, records the output of every feature layer of ``editors`` on each forward,
    in call order; the hooks are removed on exit."""

    def __init__(self, editors: Sequence[Editor]) -> None:
        self.layers = list(dict.fromkeys(m for e in editors for m in e.feature_layers()))
        self.outputs: list[torch.Tensor] = []
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> Self:
        self._handles = [m.register_forward_hook(self._record) for m in self.layers]
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _record(self, _module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
        self.outputs.append(output)


def feature_divergence(adv: Sequence[torch.Tensor], clean: Sequence[torch.Tensor],
                       n: int) -> torch.Tensor:
    """How far the adversarial features are from the clean ones, per sample: (n,).

    For each recorded layer (B = n · edits, C, h, w): the MSE of the activations relative to
    the clean activations' mean square, plus that of their per-channel means and standard
    deviations (the statistics the next normalisation sees), on the same scale; then the mean
    over layers and over each sample's edits. Scale-free, so no layer or editor outweighs
    another by its activations' magnitude. No layers recorded: zero.

    Raises:
        ValueError: the two sides recorded different layers.
    """
    if len(adv) != len(clean):
        raise ValueError(f"expected the same layers on both sides, got {len(adv)} "
                         f"adversarial and {len(clean)} clean")
    terms = [torch.zeros(n)]
    for a, c in zip(adv, clean):
        if a.shape != c.shape:
            raise ValueError(f"feature shapes differ: {tuple(a.shape)} and {tuple(c.shape)}")
        a, c = a.flatten(2), c.flatten(2)
        scale = c.square().mean(dim=(1, 2)).clamp_min(_EPS)
        activations = (a - c).square().mean(dim=(1, 2))
        stats = ((a.mean(2) - c.mean(2)).square()
                 + (a.std(2, correction=0) - c.std(2, correction=0)).square()).mean(1)
        terms.append(((activations + stats) / scale).view(n, -1).mean(dim=1))
    return torch.stack(terms[1:]).mean(dim=0) if len(terms) > 1 else terms[0]


def feature_loss(tap: FeatureTap, targets: Sequence[tuple[Editor, torch.Tensor, int]],
                 clean: torch.Tensor) -> torch.Tensor:
    """:func:`feature_divergence` of what ``tap`` recorded on the adversarial crops from the
    features of the ``clean`` crops (N, 3, H, W) through the same (editor, conditions
    (N, E, C), resolution) ``targets``, run in the same order, without gradients: (N,)."""
    with torch.no_grad(), FeatureTap([e for e, _, _ in targets]) as clean_tap:
        for editor, conditions, resolution in targets:
            run_edits(editor, clean, conditions, resolution)
    return feature_divergence(tap.outputs, clean_tap.outputs, clean.shape[0]).to(clean.device)
