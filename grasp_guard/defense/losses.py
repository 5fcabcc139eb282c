"""The three GRASP losses — defense distance, SSIM, low frequency — per sample.

Each loss is a function returning one value per sample (so a batch of faces optimises as
independent problems) plus a thin ``nn.Module`` holding its fixed kernels as buffers.
SSIM follows Wang et al., "Image Quality Assessment: From Error Visibility to Structural
Similarity", IEEE TIP 2004 (11-tap Gaussian window, σ 1.5, K1 0.01, K2 0.03), computed on the
valid region exactly as ``skimage.metrics.structural_similarity`` with
``gaussian_weights=True, use_sample_covariance=False``.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from grasp_guard.defense.config import LF_OPERATORS, LfOperator

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03
SSIM_C2 = _K2**2  # SSIM's contrast-structure constant for pixels on [0, 1]
CMUA_MASK_THRESHOLD = 0.5


def gaussian_kernel1d(size: int, sigma: float, dtype: torch.dtype = torch.float32,
                      device: torch.device | None = None) -> torch.Tensor:
    """A normalised 1-D Gaussian of odd ``size`` taps: (size,)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd int, got {size}")
    r = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    k = torch.exp(-(r**2) / (2 * sigma**2))
    return k / k.sum()


def _separable(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise 2-D filtering of (B, C, H, W) by the outer product of a 1-D kernel, no padding."""
    c = x.shape[1]
    k = kernel.to(dtype=x.dtype, device=x.device)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def gaussian_blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Same-size Gaussian blur of (B, C, H, W) with replicated borders (works at any size)."""
    p = (kernel.numel() - 1) // 2
    return _separable(F.pad(x, (p, p, p, p), mode="replicate"), kernel)


def _gaussian_lowpass_kernel(sigma: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return gaussian_kernel1d(2 * math.ceil(3 * sigma) + 1, sigma, dtype)


def _ssim_window(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return gaussian_kernel1d(SSIM_WINDOW, SSIM_SIGMA, dtype)


def ssim(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor | None = None,
         inside: torch.Tensor | None = None) -> torch.Tensor:
    """Mean SSIM per sample over the valid region and the channels.

    Args:
        x, y: (B, C, H, W) in [0, 1], H and W ≥ 11.
        window: the 1-D Gaussian window; the standard 11-tap σ 1.5 one when ``None``.
        inside: (B, 1, H, W) bool, the pixels to average over (windows centred there): a
            crop's part that lies in the image, not its padding. ``None``: every one.
    Returns:
        (B,) SSIM in [-1, 1]; 1 for identical images.
    Raises:
        ValueError: shapes differ or an image is smaller than the window.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim expects two (B, C, H, W) tensors of one shape, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs H, W ≥ {SSIM_WINDOW}, got {tuple(x.shape[-2:])}")
    w = _ssim_window(x.dtype) if window is None else window
    c1, c2 = _K1**2, SSIM_C2
    mx, my = _separable(x, w), _separable(y, w)
    vx = _separable(x * x, w) - mx * mx
    vy = _separable(y * y, w) - my * my
    cxy = _separable(x * y, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    if inside is None:
        return s.mean(dim=(1, 2, 3))
    r = (w.numel() - 1) // 2
    keep = inside[..., r:inside.shape[-2] - r, r:inside.shape[-1] - r].to(s.dtype)
    return (s * keep).sum(dim=(1, 2, 3)) / (keep.sum(dim=(1, 2, 3)) * s.shape[1]).clamp_min(1)


def ssim_loss(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor | None = None) -> torch.Tensor:
    """L_SSIM = 1 − SSIM(x, y) per sample: (B,)."""
    return 1.0 - ssim(x, y, window)


def _haar_ll(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Haar LL band after ``levels`` levels, as block means (odd sides edge-replicated)."""
    for _ in range(levels):
        h, w = x.shape[-2:]
        if h % 2 or w % 2:
            x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
        x = F.avg_pool2d(x, 2)
    return x


@functools.lru_cache(maxsize=64)
def _dct_matrix(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m.to(dtype=dtype, device=device)


def dct_low_band(x: torch.Tensor, band: float) -> torch.Tensor:
    """The lowest ⌈band·H⌉ × ⌈band·W⌉ orthonormal 2-D DCT-II coefficients of (B, C, H, W)."""
    h, w = x.shape[-2:]
    dh = _dct_matrix(h, x.dtype, x.device)[: max(1, math.ceil(band * h))]
    dw = _dct_matrix(w, x.dtype, x.device)[: max(1, math.ceil(band * w))]
    return dh @ x @ dw.T


def low_frequency_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    operator: LfOperator = "gaussian",
    sigma: float = 2.0,
    levels: int = 2,
    band: float = 0.25,
    kernel: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_LF = ‖LP(x) − LP(y)‖² as the mean squared difference per pixel of the low-passed images.

    The three operators share that scale: the Gaussian blur is compared pixel by pixel, the
    Haar LL band holds block means (so its mean square equals that of the low-passed image),
    and the DCT band's squared sum is divided by C·H·W (Parseval, orthonormal DCT).

    Args:
        x, y: (B, C, H, W) in [0, 1].
        operator: ``gaussian`` (blur with σ ``sigma``), ``dwt`` (Haar LL after ``levels``
            levels) or ``dct`` (lowest ``band`` share of coefficients per axis).
        kernel: precomputed 1-D Gaussian for ``gaussian`` (the module's buffer).
    Returns:
        (B,) non-negative losses; 0 for identical images.
    Raises:
        ValueError: unknown operator or shapes that differ.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"low_frequency_loss expects two (B, C, H, W) tensors of one shape, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    d = x - y  # every operator is linear: low-pass the difference once
    if operator == "gaussian":
        k = _gaussian_lowpass_kernel(sigma, x.dtype) if kernel is None else kernel
        return gaussian_blur(d, k).square().mean(dim=(1, 2, 3))
    if operator == "dwt":
        return _haar_ll(d, levels).square().mean(dim=(1, 2, 3))
    if operator == "dct":
        return dct_low_band(d, band).square().sum(dim=(1, 2, 3)) / d[0].numel()
    raise ValueError(f"operator must be one of {LF_OPERATORS}, got {operator!r}")


def cmua_mask(edit: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Where the editor changed the image (CMUA): Σ_channels |G(x, c) − x| > 0.5.

    Args:
        edit, source: (B, C, H, W) on the editor's [-1, 1] scale, the source being the
            editor's own input.
    Returns:
        (B, 1, H, W) float mask of 0 and 1.
    """
    return ((edit - source).abs().sum(dim=1, keepdim=True) > CMUA_MASK_THRESHOLD).to(edit.dtype)


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CMUA's distance Σ((a − b)·mask)² / (C·Σmask) per sample: (B,); 0 where the mask is empty."""
    num = ((a - b) * mask).square().sum(dim=(1, 2, 3))
    den = a.shape[1] * mask.sum(dim=(1, 2, 3))
    return torch.where(den > 0, num / den.clamp_min(1.0), torch.zeros_like(num))


def defense_loss(out: torch.Tensor, ref: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """D(G(x'), G(x)) per sample: MSE, or CMUA-masked MSE when ``mask`` is given: (B,)."""
    if mask is None:
        return (out - ref).square().mean(dim=(1, 2, 3))
    return masked_mse(out, ref, mask)


class SSIMLoss(nn.Module):
    """:func:`ssim_loss` with its Gaussian window as a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", _ssim_window())

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ssim_loss(x, y, self.window)


class LowFrequencyLoss(nn.Module):
    """:func:`low_frequency_loss` with a fixed operator; the Gaussian kernel is a buffer."""

    def __init__(self, operator: LfOperator = "gaussian", sigma: float = 2.0, levels: int = 2,
                 band: float = 0.25) -> None:
        super().__init__()
        if operator not in LF_OPERATORS:
            raise ValueError(f"operator must be one of {LF_OPERATORS}, got {operator!r}")
        self.operator: LfOperator = operator
        self.levels = levels
        self.band = band
        self.sigma = sigma
        self.register_buffer("kernel", _gaussian_lowpass_kernel(sigma))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return low_frequency_loss(x, y, self.operator, self.sigma, self.levels, self.band,
                                  self.kernel)


class DefenseLoss(nn.Module):
    """:func:`defense_loss` as a module (no state: the mask depends on the clean edit)."""

    def forward(self, out: torch.Tensor, ref: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return defense_loss(out, ref, mask)
