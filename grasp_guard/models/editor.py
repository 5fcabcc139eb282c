"""The surrogate-editor interface the defense optimises against."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class EditorInfo:
    """What a surrogate is: its name, input size, attributes and provenance.

    ``reference`` marks the small editor trained in this repository: a stand-in for real
    deepfake models, never a claim about them. ``seeded`` marks random weights at full size
    (a mechanics check only). ``scales`` lists the resolutions a fully convolutional editor
    may also be run at (an attacker runs it at their own size); empty for fixed-size editors.
    """

    name: str
    resolution: int
    attributes: tuple[str, ...]
    reference: bool = False
    seeded: bool = False
    scales: tuple[int, ...] = ()

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Every size the editor runs at, ascending: its own and its ``scales``."""
        return tuple(sorted({self.resolution, *self.scales}))

    @property
    def label(self) -> str:
        if self.reference:
            return f"{self.name} (reference surrogate trained in this repo, not a real deepfake model)"
        if self.seeded:
            return f"{self.name} (seeded random weights: mechanics check only)"
        return self.name


class Editor(nn.Module):
    """A frozen face editor G(x, c) behind one calling convention.

    ``forward`` takes images in [0, 1] at ``info.resolution`` (B, 3, R, R) and conditions
    (B, C) and returns the edit on the editor's own [-1, 1] scale, where every metric of
    GRASP.md is defined. Each adapter owns its normalisation and its test edits.
    """

    info: EditorInfo

    def conditions(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The standard test edits for one image with source ``labels``: (E, C)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def to_model_space(x: torch.Tensor) -> torch.Tensor:
        """[0, 1] → [-1, 1] (mean 0.5, std 0.5), the official editors' normalisation."""
        return x * 2.0 - 1.0

    def feature_layers(self) -> tuple[nn.Module, ...]:
        """Intermediate modules whose outputs the feature-level defense pushes away from the
        clean ones (the encoder's down-sampled stem and first residual blocks); none by
        default."""
        return ()

    def freeze(self) -> Editor:
        """No parameter gradients; gradients flow to the input only."""
        self.requires_grad_(False)
        return self
