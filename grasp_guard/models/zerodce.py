"""Zero-DCE low-light enhancement, checkpoint-compatible with the neuro-low-light wheel.

Guo et al., "Zero-Reference Deep Curve Estimation for Low-Light Image Enhancement", CVPR 2020.
A 7-conv curve estimator (``dce_net``: 3×3 convs, 32 channels, ReLU, the mirrored skip
concatenations conv4‖conv3 → conv5, conv5‖conv2 → conv6, conv6‖conv1 → conv7) predicts
``tanh`` curve parameters ``A_n`` (3 per iteration, one per colour, at every pixel); the image
is then bent ``n_iterations`` times by the light-enhancement curve of the package's code,
``x ← clamp(x − A_n · x(1 − x), 0, 1)`` (the paper's LE curve with the sign of its ``A``
flipped, as in the official Zero-DCE code). For ``A`` in [−1, 1] the curve maps [0, 1] into
itself, so the clamp only bites on inputs outside [0, 1]; it is kept so that the forward pass is
the package's own. Input and output are images on [0, 1]; no normalisation.

neuro-low-light 0.1.0 calls its model "Zero-DCE++", but its weights are this original
Zero-DCE layout (plain convs, 8 separate curve maps, no downsampling), keyed ``dce_net.conv1``
… ``dce_net.conv7`` and saved inside a full training checkpoint (``model_state_dict`` beside
the optimiser, scheduler and AMP scaler states). :func:`load_zerodce` takes that dict or a
plain state_dict, strictly. The network is fully convolutional and runs at any size.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from grasp_guard.errors import CheckpointError
from grasp_guard.models.editor import Editor, EditorInfo
from grasp_guard.models.weights import load_state_dict_strict, read_checkpoint

logger = logging.getLogger(__name__)

DEFAULT_ITERATIONS = 8
# Where a full training checkpoint keeps the network's weights (neuro-low-light's train.py).
STATE_KEY = "model_state_dict"
_WIDTH = 32


class DCENet(nn.Module):
    """The curve estimator: (B, 3, H, W) on [0, 1] → (B, 3·n_iterations, H, W) on [−1, 1]."""

    def __init__(self, n_iterations: int = DEFAULT_ITERATIONS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, _WIDTH, 3, padding=1)
        self.conv2 = nn.Conv2d(_WIDTH, _WIDTH, 3, padding=1)
        self.conv3 = nn.Conv2d(_WIDTH, _WIDTH, 3, padding=1)
        self.conv4 = nn.Conv2d(_WIDTH, _WIDTH, 3, padding=1)
        self.conv5 = nn.Conv2d(2 * _WIDTH, _WIDTH, 3, padding=1)
        self.conv6 = nn.Conv2d(2 * _WIDTH, _WIDTH, 3, padding=1)
        self.conv7 = nn.Conv2d(2 * _WIDTH, 3 * n_iterations, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Not in place (the package uses ReLU(inplace=True)): same values, safe for autograd.
        x1 = F.relu(self.conv1(x))
        x2 = F.relu(self.conv2(x1))
        x3 = F.relu(self.conv3(x2))
        x4 = F.relu(self.conv4(x3))
        x5 = F.relu(self.conv5(torch.cat([x4, x3], dim=1)))
        x6 = F.relu(self.conv6(torch.cat([x5, x2], dim=1)))
        return torch.tanh(self.conv7(torch.cat([x6, x1], dim=1)))


class ZeroDCE(nn.Module):
    """(B, 3, H, W) on [0, 1] → the enhanced (B, 3, H, W) on [0, 1]; any H and W."""

    def __init__(self, n_iterations: int = DEFAULT_ITERATIONS) -> None:
        super().__init__()
        self.n_iterations = n_iterations
        self.dce_net = DCENet(n_iterations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_curves(x, self.dce_net(x))

    @property
    def output_conv(self) -> nn.Module:
        """The last conv: ``tanh`` follows it, and its output is curve parameters, not pixels."""
        return self.dce_net.conv7


def apply_curves(x: torch.Tensor, curves: torch.Tensor) -> torch.Tensor:
    """Bend ``x`` (B, 3, H, W) by each triple of ``curves`` (B, 3·n, H, W) in turn."""
    enhanced = x
    for a in curves.split(3, dim=1):
        enhanced = torch.clamp(enhanced - a * (enhanced * (1 - enhanced)), 0, 1)
    return enhanced


def zerodce_info(
    name: str,
    resolution: int,
    scales: tuple[int, ...] = (),
    seeded: bool = False,
    *,
    attributes: tuple[str, ...] = ("enhance",),
) -> EditorInfo:
    """The :class:`EditorInfo` of a Zero-DCE editor: one edit, named by ``attributes``."""
    if len(attributes) != 1:
        raise ValueError(
            f"a Zero-DCE enhancer makes one edit: expected one attribute name, got {attributes!r}"
        )
    return EditorInfo(name, resolution, attributes, seeded=seeded, scales=scales)


class ZeroDCEEditor(Editor):
    """A Zero-DCE enhancer behind the :class:`Editor` convention: one edit, no condition.

    The network reads [0, 1] images as they are; its [0, 1] output is mapped to [−1, 1].
    """

    def __init__(self, network: ZeroDCE, info: EditorInfo) -> None:
        super().__init__()
        self.generator = network
        self.info = info

    def conditions(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.zeros(1, 0)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.generator(x) * 2.0 - 1.0

    def feature_layers(self) -> tuple[nn.Module, ...]:
        """The second and fourth convs of the curve estimator (it never down-samples)."""
        return (self.generator.dce_net.conv2, self.generator.dce_net.conv4)


def _network_state(checkpoint: object, path: str | Path) -> dict[str, torch.Tensor]:
    """The named tensors of a full training checkpoint (its ``model_state_dict``) or of a
    plain state_dict."""
    state = checkpoint
    if isinstance(state, Mapping) and STATE_KEY in state:
        state = state[STATE_KEY]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(
            f"{path} holds neither a state_dict of named tensors nor a training checkpoint "
            f"with one under {STATE_KEY!r}"
        )
    return dict(state)


def _iterations(state: Mapping[str, torch.Tensor]) -> int:
    """Curve iterations, read from conv7's output channels (3 each); the default otherwise,
    so that the strict load names a missing or mis-shaped conv7."""
    conv7 = state.get("dce_net.conv7.weight", state.get("module.dce_net.conv7.weight"))
    if isinstance(conv7, torch.Tensor) and conv7.ndim == 4 and conv7.shape[0] % 3 == 0:
        return max(1, conv7.shape[0] // 3)
    return DEFAULT_ITERATIONS


def load_zerodce(path: str | Path, info: EditorInfo) -> ZeroDCEEditor:
    """Load a Zero-DCE checkpoint (a training checkpoint dict or a plain state_dict), strictly.

    Raises:
        CheckpointError: unreadable file, or keys and shapes of another network (named).
    """
    state = _network_state(read_checkpoint(path), path)
    network = ZeroDCE(_iterations(state))
    load_state_dict_strict(network, state, source=str(path))
    logger.info("loaded Zero-DCE %s (%d iterations) from %s", info.name, network.n_iterations, path)
    editor = ZeroDCEEditor(network, info)
    editor.eval().freeze()
    return editor
