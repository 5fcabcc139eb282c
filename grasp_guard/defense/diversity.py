"""Input diversity: the editors see x' rescaled and shifted at random, one draw per step.

After DI-FGSM (Xie et al., "Improving Transferability of Adversarial Examples with Input
Diversity", CVPR 2019): a perturbation that must work through a random resize and shift
cannot lean on one exact pixel grid of the surrogates. That grid is also what an attacker
does not share: their crop of the face lies a few pixels and a few per cent away from ours,
and a perturbation tuned to our crop's phase on the editor's strided convolutions is gone
one pixel over (32 real faces, the real CycleGAN, 40 dB: DSR 1.00 at our crop, 0.08 at
shifted and rescaled ones; bench/results/quality-real-cyclegan-framing-*.md). The
draw is one view (differentiable, mirrored past the border as a real neighbourhood would
continue): a whole-pixel shift, or a zoom resized as Pillow resizes (antialiased bilinear)
and shifted, the same for every sample of a step, so a face's result does not depend on
which batch it ran in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class RescaleShift:
    """Zoom by ``scale`` about the centre, then move by (``dx``, ``dy``) in units of half
    the side (outside the image, x' is mirrored about its border).

    A zoom resizes as an attacker's resizer does (Pillow, OpenCV's area, torchvision's
    antialias): antialiased, then cut at whole pixels. Point sampling (``grid_sample``) would
    alias a shrunk copy's finest detail, which is where a perturbation lives: on the demo's
    face, optimised through point-sampled zooms, 4 of 8 attacker framings at 128 px were
    disrupted; through antialiased ones, 6 of 8 (``bench/results/large_face_probe.md``).
    """

    scale: float
    dx: float
    dy: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] → the same shape and range."""
        if self.scale != 1.0:
            return self._zoom(x)
        theta = torch.tensor([[1.0, 0.0, -self.dx], [0.0, 1.0, -self.dy]],
                             dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def _zoom(self, x: torch.Tensor) -> torch.Tensor:
        """Resize the mirrored neighbourhood (antialiased), cut the shifted window."""
        h, w = x.shape[-2:]
        sx, sy = round(self.dx * w / 2), round(self.dy * h / 2)
        p = mirror_margin(h, w)
        big = F.pad(x, (p, p, p, p), mode="reflect")
        size = (round(big.shape[-2] * self.scale), round(big.shape[-1] * self.scale))
        big = F.interpolate(big, size=size, mode="bilinear", align_corners=False, antialias=True)
        top = min(max((size[0] - h) // 2 - sy, 0), size[0] - h)
        left = min(max((size[1] - w) // 2 - sx, 0), size[1] - w)
        return big[..., top:top + h, left:left + w]


def mirror_margin(h: int, w: int) -> int:
    """The mirrored border a zoom resizes an (h, w) image with: a quarter of its side
    (enough for a zoom and a shift of up to 20% each; a view past it is held at the border),
    one size for every zoom and shift, so that a shifted view is the same resize moved."""
    return min(math.ceil(max(h, w) / 4), h - 1, w - 1)


def draw(gen: torch.Generator, max_change: float, prob: float,
         size: tuple[int, int]) -> RescaleShift | None:
    """This step's view of an (H, W) = ``size`` crop: with probability ``prob`` a view,
    otherwise ``None`` (x' as is). Half the views are a whole-pixel shift of up to
    ``max_change`` half-sides each way: the editor's strided grid at another phase, x' not
    resampled — an attacker's crop cut elsewhere and not resized keeps the finest detail
    sharp, which a fractional shift or a zoom would blur away. The other half zoom by a
    factor in [1 − max_change, 1 + max_change] and shift by up to ``max_change`` half-sides
    (in whole pixels of the zoomed copy).

    Six numbers are drawn every call, whatever the outcome, so the sequence of draws is
    fixed by the seed alone.
    """
    u = torch.rand(6, generator=gen, dtype=torch.float64).tolist()
    if u[0] >= prob:
        return None
    if u[1] < 0.5:
        dy, dx = (_whole_pixels(v, max_change, side) for v, side in zip(u[2:4], size))
        return RescaleShift(scale=1.0, dx=dx, dy=dy)
    return RescaleShift(scale=1.0 + max_change * (2.0 * u[3] - 1.0),
                        dx=max_change * (2.0 * u[4] - 1.0), dy=max_change * (2.0 * u[5] - 1.0))


def _whole_pixels(u: float, max_change: float, side: int) -> float:
    """A uniform ``u`` in [0, 1) → a whole-pixel shift of up to ``max_change`` half-sides."""
    reach = round(max_change * side / 2)
    return pixels(math.floor(u * (2 * reach + 1)) - reach, side)


def pixels(shift: float, side: int) -> float:
    """A shift of ``shift`` pixels on a ``side``-px image, in :class:`RescaleShift` units."""
    return 2.0 * shift / side


def framings(side: int) -> tuple[RescaleShift, ...]:
    """Fixed attacker framings of a ``side``-px crop that the loop's checks judge by: the
    editor's grid one to three pixels over, and the face 5% smaller or larger."""
    px = [pixels(p, side) for p in (1, 2, 3)]
    return (RescaleShift(1.0, px[0], px[1]), RescaleShift(1.0, px[2], px[0]),
            RescaleShift(0.95, px[1], 0.0), RescaleShift(1.05, 0.0, px[2]))
