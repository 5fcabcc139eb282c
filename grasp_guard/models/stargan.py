"""StarGAN generator, checkpoint-compatible with the official CelebA release.

Choi et al., "StarGAN: Unified Generative Adversarial Networks for Multi-Domain
Image-to-Image Translation", CVPR 2018. Layer indices, names and shapes follow the official
``model.py`` so ``200000-G.ckpt`` loads unchanged (see shared/design/MODELS.md).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from grasp_guard.models.editor import Editor, EditorInfo

CELEBA_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")


class InstanceStatsNorm(nn.InstanceNorm2d):
    """InstanceNorm2d that always normalises with the instance's own statistics.

    The official test code never calls ``G.eval()``, so its norms use per-instance
    statistics; the running buffers are kept only so official checkpoints load strictly.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


def _norm(channels: int) -> InstanceStatsNorm:
    return InstanceStatsNorm(channels, affine=True, track_running_stats=True)


class ResidualBlock(nn.Module):
    """Conv3x3-IN-ReLU-Conv3x3-IN with an identity shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            _norm(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


class Upsample(nn.Module):
    """Nearest ×2 then a 3×3 conv: the checkerboard-free alternative to a transposed conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Generator(nn.Module):
    """The StarGAN generator: (B, 3, H, W) in [-1, 1] and labels (B, c_dim) → (B, 3, H, W).

    ``upsampler="transpose"`` is the official architecture; ``"resize"`` swaps the two
    transposed convs for resize-convs (used by the reference surrogate only; its keys then
    read ``main.15.conv.weight``).
    """

    def __init__(
        self,
        conv_dim: int = 64,
        c_dim: int = 5,
        repeat_num: int = 6,
        upsampler: Literal["transpose", "resize"] = "transpose",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3 + c_dim, conv_dim, 7, 1, 3, bias=False),
            _norm(conv_dim),
            nn.ReLU(inplace=True),
        ]
        dim = conv_dim
        for _ in range(2):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=False), _norm(dim * 2), nn.ReLU(inplace=True)]
            dim *= 2
        layers += [ResidualBlock(dim) for _ in range(repeat_num)]
        for _ in range(2):
            up: nn.Module
            if upsampler == "transpose":
                up = nn.ConvTranspose2d(dim, dim // 2, 4, 2, 1, bias=False)
            else:
                up = Upsample(dim, dim // 2)
            layers += [up, _norm(dim // 2), nn.ReLU(inplace=True)]
            dim //= 2
        layers += [nn.Conv2d(dim, 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        c = c.view(c.size(0), c.size(1), 1, 1).expand(-1, -1, x.size(2), x.size(3))
        return self.main(torch.cat([x, c], dim=1))

    @property
    def output_conv(self) -> nn.Module:
        """The last conv: only ``tanh`` follows it."""
        return self.main[-2]


def stargan_conditions(labels: torch.Tensor, attributes: tuple[str, ...]) -> torch.Tensor:
    """The official test targets: each hair colour set exclusively, every other label flipped.

    Args:
        labels: (C,) source labels in {0, 1}.
    Returns:
        (C, C) one target label vector per attribute.
    """
    hair = [i for i, name in enumerate(attributes) if name in HAIR_COLOURS]
    targets = []
    for i in range(len(attributes)):
        t = labels.clone().float()
        if i in hair:
            t[hair] = 0.0
            t[i] = 1.0
        else:
            t[i] = 1.0 - t[i]
        targets.append(t)
    return torch.stack(targets)


class StarGANEditor(Editor):
    """A StarGAN generator behind the :class:`Editor` convention."""

    def __init__(self, generator: Generator, info: EditorInfo) -> None:
        super().__init__()
        self.generator = generator
        self.info = info

    def conditions(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            labels = torch.zeros(len(self.info.attributes))
        return stargan_conditions(labels, self.info.attributes)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.generator(self.to_model_space(x), c)

    def feature_layers(self) -> tuple[nn.Module, ...]:
        """The down-sampled stem (after the second stride-2 conv's ReLU) and the second
        residual block (the first when there is one)."""
        blocks = [m for m in self.generator.main if isinstance(m, ResidualBlock)]
        return (self.generator.main[8], blocks[min(1, len(blocks) - 1)])
