"""CycleGAN ResNet generator, checkpoint-compatible with pytorch-CycleGAN-and-pix2pix and vintagify.

Zhu et al., "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks",
ICCV 2017. One ``nn.Sequential`` named ``model`` (see shared/design/MODELS.md): reflection
padding, 7×7 stem, two stride-2 convs, ``n_blocks`` residual blocks, two transposed convs,
7×7 head and tanh; every conv has a bias. Two releases differ only in names and norms:

- pytorch-CycleGAN-and-pix2pix: blocks named ``conv_block``, InstanceNorm without affine
  parameters (no norm keys); with ``use_dropout`` a Dropout sits inside each block.
- vintagify: blocks named ``block``, InstanceNorm with affine parameters.

:func:`load_cyclegan` reads which variant a state_dict is and loads it strictly. The norms
never keep running statistics: they normalise per instance in train and eval mode alike.
The network is fully convolutional and runs at any side divisible by 4.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from grasp_guard.errors import CheckpointError
from grasp_guard.models.editor import Editor, EditorInfo
from grasp_guard.models.weights import load_state_dict_strict, read_checkpoint

logger = logging.getLogger(__name__)

# Checkpoints saved by PyTorch < 0.4 carry running buffers on their (non-affine) InstanceNorms
# that the norms never use; the reference code drops them on load, and so do we. A norm with
# both running buffers and affine weights is a BatchNorm: kept, so the strict load rejects it.
_NORM_BUFFERS = (".running_mean", ".running_var", ".num_batches_tracked")


@dataclass(frozen=True)
class CycleGANConfig:
    """The generator's shape: ``ngf`` stem channels, ``n_blocks`` residual blocks."""

    ngf: int = 64
    n_blocks: int = 9
    affine: bool = True
    use_dropout: bool = False
    block_name: str = "block"


class ResnetBlock(nn.Module):
    """Pad-Conv3x3-IN-ReLU[-Dropout]-Pad-Conv3x3-IN with an identity shortcut."""

    def __init__(self, dim: int, affine: bool, use_dropout: bool, block_name: str) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            nn.InstanceNorm2d(dim, affine=affine),
            nn.ReLU(),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            nn.InstanceNorm2d(dim, affine=affine),
        ]
        self.block_name = block_name
        self.add_module(block_name, nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + getattr(self, self.block_name)(x)


class ResnetGenerator(nn.Module):
    """(B, 3, H, W) on [-1, 1] → (B, 3, H, W) on [-1, 1]; H and W divisible by 4."""

    def __init__(self, config: CycleGANConfig = CycleGANConfig()) -> None:
        super().__init__()
        ngf, affine = config.ngf, config.affine
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(3, ngf, 7),
            nn.InstanceNorm2d(ngf, affine=affine),
            nn.ReLU(),
        ]
        dim = ngf
        for _ in range(2):
            layers += [
                nn.Conv2d(dim, dim * 2, 3, 2, 1),
                nn.InstanceNorm2d(dim * 2, affine=affine),
                nn.ReLU(),
            ]
            dim *= 2
        layers += [
            ResnetBlock(dim, affine, config.use_dropout, config.block_name)
            for _ in range(config.n_blocks)
        ]
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(dim, dim // 2, 3, 2, 1, output_padding=1),
                nn.InstanceNorm2d(dim // 2, affine=affine),
                nn.ReLU(),
            ]
            dim //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    @property
    def output_conv(self) -> nn.Module:
        """The last conv: only ``tanh`` follows it."""
        return self.model[-2]


def infer_config(state_dict: Mapping[str, torch.Tensor]) -> CycleGANConfig:
    """The :class:`CycleGANConfig` a state_dict was saved from, read from its keys and shapes.

    Raises:
        CheckpointError: the keys are not those of a CycleGAN ResNet generator.
    """
    stem = state_dict.get("model.1.weight")
    if not isinstance(stem, torch.Tensor) or stem.ndim != 4 or tuple(stem.shape[1:]) != (3, 7, 7):
        raise CheckpointError("not a CycleGAN ResNet generator: no (ngf, 3, 7, 7) model.1.weight")
    names = {
        m.group(1) for k in state_dict if (m := re.match(r"model\.\d+\.(block|conv_block)\.", k))
    }
    if len(names) != 1:
        raise CheckpointError(
            f"not a CycleGAN ResNet generator: residual blocks named {sorted(names) or 'nowhere'}"
        )
    block_name = names.pop()
    block_indices = {int(k.split(".")[1]) for k in state_dict if f".{block_name}." in k}
    # With dropout the block's second conv sits at index 6, where its norm sits otherwise.
    second = state_dict.get(f"model.{min(block_indices)}.{block_name}.6.weight")
    use_dropout = isinstance(second, torch.Tensor) and second.ndim == 4
    return CycleGANConfig(
        ngf=int(stem.shape[0]),
        n_blocks=len(block_indices),
        affine="model.2.weight" in state_dict,
        use_dropout=bool(use_dropout),
        block_name=block_name,
    )


def cyclegan_info(
    name: str,
    resolution: int,
    scales: tuple[int, ...] = (),
    seeded: bool = False,
    *,
    attributes: tuple[str, ...] = ("translate",),
) -> EditorInfo:
    """The :class:`EditorInfo` of a CycleGAN editor: one edit, named by ``attributes``."""
    if len(attributes) != 1:
        raise ValueError(
            f"a CycleGAN makes one edit: expected one attribute name, got {attributes!r}"
        )
    return EditorInfo(name, resolution, attributes, seeded=seeded, scales=scales)


class CycleGANEditor(Editor):
    """A CycleGAN generator behind the :class:`Editor` convention: one edit, no condition."""

    def __init__(self, generator: ResnetGenerator, info: EditorInfo) -> None:
        super().__init__()
        self.generator = generator
        self.info = info

    def conditions(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.zeros(1, 0)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(
                f"CycleGAN input sides must be divisible by 4, got {tuple(x.shape[-2:])}"
            )
        return self.generator(self.to_model_space(x))

    def feature_layers(self) -> tuple[nn.Module, ...]:
        """The down-sampled stem (after the second stride-2 conv's ReLU) and the second
        residual block (the first when there is one)."""
        blocks = [m for m in self.generator.model if isinstance(m, ResnetBlock)]
        return (self.generator.model[9], blocks[min(1, len(blocks) - 1)])


def _drop_stale_norm_buffers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    def owner(key: str) -> str:
        return key.rsplit(".", 1)[0]

    stale = {
        owner(k) for k in state if k.endswith(_NORM_BUFFERS) and f"{owner(k)}.weight" not in state
    }
    return {k: v for k, v in state.items() if not (k.endswith(_NORM_BUFFERS) and owner(k) in stale)}


def load_cyclegan(path: str | Path, info: EditorInfo) -> CycleGANEditor:
    """Load a CycleGAN ResNet generator checkpoint (a plain state_dict), strictly.

    Raises:
        CheckpointError: unreadable file, or keys and shapes of another network (named).
    """
    state = read_checkpoint(path)
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path} does not hold a state_dict of named tensors")
    state = _drop_stale_norm_buffers(state)
    generator = ResnetGenerator(infer_config(state))
    load_state_dict_strict(generator, state, source=str(path))
    logger.info("loaded CycleGAN %s from %s", info.name, path)
    editor = CycleGANEditor(generator, info)
    editor.eval().freeze()
    return editor
