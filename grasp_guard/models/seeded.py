"""Calibration that makes a seeded random editor behave like a working one on photos.

A full-size architecture with random weights is the benchmark's mechanics check. Two of its
statistics are set by the initialisation rather than by anything a trained editor shares, and
both decide how fragile it looks: BatchNorm running statistics (see
:func:`grasp_guard.models.attgan.calibrate_batchnorm`) and the contrast of its output, which
the scale of the last convolution sets alone (every earlier conv is followed by a norm). A
trained editor outputs a photo, so :func:`match_output_contrast` scales that convolution until
the edits have the contrast of the photos they were made from. Both use the same held-in
samples, never the evaluation crops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from grasp_guard.models.editor import Editor
from grasp_guard.models.reference_edits import TRAIN_IMAGES, load_sample

_SCALE_RANGE = (1e-2, 1e2)
_BISECTION_STEPS = 60


def calibration_images(resolution: int, count: int = 6) -> torch.Tensor:
    """Centre squares of the first ``count`` training samples: (count, 3, res, res) in [0, 1]."""
    squares = []
    for name in TRAIN_IMAGES[:count]:
        img = torch.from_numpy(load_sample(name)).permute(2, 0, 1).float() / 255.0
        side = min(img.shape[1:])
        top, left = (img.shape[1] - side) // 2, (img.shape[2] - side) // 2
        squares.append(img[:, top : top + side, left : left + side])
    resized = [
        F.interpolate(sq[None], size=(resolution, resolution), mode="bilinear",
                      align_corners=False, antialias=True)
        for sq in squares
    ]
    return torch.cat(resized).clamp(0.0, 1.0)  # the antialiasing kernel can overshoot


def image_contrast(x: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of each image's standard deviation over all its values."""
    return x.flatten(1).std(dim=1).mean()


def match_output_contrast(editor: Editor, output_conv: nn.Module, x: torch.Tensor) -> float:
    """Scale ``output_conv`` so the editor's edits of ``x`` have the contrast of ``x``.

    ``output_conv`` must be the editor's last linear layer, followed by ``tanh`` only, so
    scaling its weight and bias by ``s`` scales the pre-activation by ``s``; ``s`` is found
    by bisection on the captured pre-activations (the edit's contrast grows with ``s``).

    Args:
        x: (N, 3, H, W) photos in [0, 1] at the editor's resolution; every test edit is run.
    Returns:
        The scale applied.
    """
    cond = editor.conditions()
    batch = x.repeat_interleave(len(cond), dim=0)
    labels = cond.repeat(len(x), 1)
    captured: list[torch.Tensor] = []
    hook = output_conv.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        with torch.no_grad():
            editor(batch, labels)
    finally:
        hook.remove()
    pre_activation = captured[0]
    target = image_contrast(editor.to_model_space(x))
    low, high = _SCALE_RANGE
    for _ in range(_BISECTION_STEPS):
        mid = (low * high) ** 0.5
        if image_contrast(torch.tanh(mid * pre_activation)) < target:
            low = mid
        else:
            high = mid
    scale = (low * high) ** 0.5
    with torch.no_grad():
        for param in output_conv.parameters(recurse=False):
            param.mul_(scale)
    return scale
