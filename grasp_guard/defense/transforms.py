"""Differentiable models of what a social site does to an upload: resize, blur, JPEG re-encode.

Every transform maps a ``(B, 3, H, W)`` float tensor in [0, 1] to one of the same shape, so the
GRASP loop can put it between the perturbed crop and the surrogate editors as Expectation over
Transformation (Athalye et al., "Synthesizing Robust Adversarial Examples", ICML 2018): each
call draws fresh random parameters (quality, scale, sigma, block-grid phase) from a seeded
``torch.Generator`` the transform owns, so a run is reproducible from its seed.

The JPEG model follows libjpeg(-turbo) as Pillow drives it: JFIF full-range YCbCr, 2×2 box
chroma downsampling, 8×8 orthonormal block DCT, the IJG tables scaled like
``jpeg_quality_scaling``, and the decoder's "fancy" triangular chroma upsampling. Rounding uses a
straight-through estimator (Bengio et al., 2013; BPDA in Athalye et al., 2018): the forward pass is
the exact quantiser, so the editors see what a real re-encode would give them, and the backward pass
is the identity, so the gradient does not vanish at coefficients that round to zero (the cubic
``x_r + (x - x_r)^3`` of Shin & Song, 2017, is off by up to 1/8 of a step forward and its gradient
is zero at every integer, which is exactly where the quantised coefficients sit).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from grasp_guard.errors import ConfigError

logger = logging.getLogger(__name__)

Subsampling = Literal["4:2:0", "4:4:4"]
SUBSAMPLINGS: tuple[str, ...] = ("4:2:0", "4:4:4")

# ITU-T T.81 Annex K (the IJG defaults), natural (row-major) order: row = vertical frequency.
_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8 for _ in range(4)),
)

# JFIF (ITU-R BT.601 full range) colour transforms, on the 0..255 scale.
_RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168735892, -0.331264108, 0.5),
    (0.5, -0.418687589, -0.081312411),
)
_YCBCR_TO_RGB = (
    (1.0, 0.0, 1.402),
    (1.0, -0.344136286, -0.714136286),
    (1.0, 1.772, 0.0),
)
_CHROMA_OFFSET = 128.0


def jpeg_quantization_tables(quality: int) -> Tensor:
    """The luminance and chrominance tables libjpeg writes for a quality setting.

    Same integer arithmetic as libjpeg's ``jpeg_quality_scaling`` and ``jpeg_add_quant_table``
    with ``force_baseline=TRUE`` (what Pillow passes): scale = 5000 / q below 50, else 200 − 2q;
    entry = (base · scale + 50) // 100 clamped to 1..255.

    Args:
        quality: 1..100.

    Returns:
        ``(2, 8, 8)`` int64 tensor, luminance then chrominance, natural order (as Pillow's
        ``Image.quantization`` reports them).

    Raises:
        ValueError: quality outside 1..100.
    """
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an int in 1..100, got {quality!r}")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    base = torch.tensor((_LUMA_TABLE, _CHROMA_TABLE), dtype=torch.int64)
    return ((base * scale + 50) // 100).clamp(1, 255)


def estimate_jpeg_quality(luma_table: Sequence[int]) -> int:
    """The libjpeg quality whose luminance table is closest to ``luma_table`` (natural order).

    Cameras and apps with tables of their own get the quality of similar strength.
    """
    table = torch.tensor(list(luma_table), dtype=torch.float64).view(8, 8)
    errors = [float((jpeg_quantization_tables(q)[0] - table).abs().sum()) for q in range(1, 101)]
    return 1 + min(range(100), key=errors.__getitem__)


def _dct_matrix(n: int = 8) -> Tensor:
    """Orthonormal DCT-II matrix; ``D @ X @ D.T`` is the JPEG FDCT of an n×n block."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d


def _ste_round(x: Tensor) -> Tensor:
    """Round forward, identity backward (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def _fancy_upsample_2x(x: Tensor, dim: int) -> Tensor:
    """Double one spatial axis with libjpeg's triangular filter (3/4 nearer, 1/4 farther).

    Edge samples repeat, as in libjpeg-turbo's ``h2v2_fancy_upsample``.
    """
    n = x.shape[dim]
    prev = torch.cat((x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)), dim)
    nxt = torch.cat((x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)), dim)
    even = 0.75 * x + 0.25 * prev
    odd = 0.75 * x + 0.25 * nxt
    out = torch.stack((even, odd), dim + 1)
    shape = list(x.shape)
    shape[dim] = 2 * n
    return out.reshape(shape)


def _sample_uniform(lo: float, hi: float, generator: torch.Generator) -> float:
    if lo == hi:
        return lo
    return lo + (hi - lo) * torch.rand((), generator=generator, dtype=torch.float64).item()


def _generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def _as_range(value: float | Sequence[float], name: str) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), float(value)
    if (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and value[0] <= value[1]
    ):
        return float(value[0]), float(value[1])
    raise ValueError(f"{name} must be a number or a [lo, hi] pair with lo <= hi, got {value!r}")


def _quality_range(value: Any) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
    if (
        len(pair) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
        or not 1 <= pair[0] <= pair[1] <= 100
    ):
        raise ValueError(
            f"quality must be an int in 1..100 or a [lo, hi] range in it, got {value!r}"
        )
    return pair[0], pair[1]


def _check_images(x: Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point tensor, got {x.dtype}")


class Identity(nn.Module):
    """The site that keeps uploads as they are."""

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` unchanged."""
        return x


class DiffJPEG(nn.Module):
    """Differentiable JPEG encode + decode round trip, as libjpeg-turbo under Pillow does it.

    Args:
        quality: an IJG quality 1..100, or an inclusive ``(lo, hi)`` range drawn from
            uniformly on each call.
        subsampling: ``"4:2:0"`` (2×2 chroma averaging, what sites use) or ``"4:4:4"``.
        random_grid: shift the 8×8 (4:4:4) or 16×16 (4:2:0) block grid by a random phase on each
            call, because a face crop's position relative to the site's block grid is unknown
            once the site has resized the image. Off, the grid starts at the crop's corner.
        seed: seeds the generator of the random draws; ``None`` seeds it from the OS.

    Raises:
        ValueError: quality or subsampling out of range.
    """

    def __init__(
        self,
        quality: int | tuple[int, int],
        subsampling: Subsampling = "4:2:0",
        random_grid: bool = False,
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        lo, hi = _quality_range(quality)
        if subsampling not in SUBSAMPLINGS:
            raise ValueError(f"subsampling must be one of {SUBSAMPLINGS}, got {subsampling!r}")
        self.quality_range = (lo, hi)
        self.subsampling = subsampling
        self.random_grid = random_grid
        self.generator = _generator(seed)
        tables = torch.stack([jpeg_quantization_tables(q) for q in range(lo, hi + 1)])
        self.register_buffer("qtables", tables.to(torch.float64), persistent=False)
        self.register_buffer("dct", _dct_matrix(), persistent=False)
        self.register_buffer("rgb_to_ycbcr", torch.tensor(_RGB_TO_YCBCR, dtype=torch.float64),
                             persistent=False)
        self.register_buffer("ycbcr_to_rgb", torch.tensor(_YCBCR_TO_RGB, dtype=torch.float64),
                             persistent=False)

    @property
    def _mcu(self) -> int:
        return 16 if self.subsampling == "4:2:0" else 8

    def sample_quality(self) -> int:
        """Draw the quality of the next call from the held generator."""
        lo, hi = self.quality_range
        if lo == hi:
            return lo
        return lo + int(torch.randint(hi - lo + 1, (), generator=self.generator))

    def forward(self, x: Tensor, grid: Tensor | None = None) -> Tensor:
        """Re-encode a batch as JPEG at a freshly drawn quality.

        Args:
            x: ``(B, 3, H, W)`` floats in [0, 1], any H and W.
            grid: ``(B, 3)`` integers per sample: its (row, column) phase on the block grid
                of the image it lives in — its top-left pixel's position modulo the MCU, so
                the simulated blocks are the real codec's — and 1 where the image stores its
                pixels transposed against the sample (an EXIF quarter turn: the blocks'
                frequencies swap axes), else 0. A negative phase (unknown) takes this call's
                drawn (or zero) phase.

        Returns:
            ``(B, 3, H, W)`` decoded image in [0, 1], differentiable w.r.t. ``x``.

        Raises:
            ValueError: ``grid`` not ``(B, 3)``.
        """
        _check_images(x)
        quality = self.sample_quality()
        tables = self.qtables[quality - self.quality_range[0]].to(x.dtype)
        mcu = self._mcu
        dy, dx = 0, 0
        if self.random_grid:
            dy, dx = (int(v) for v in torch.randint(mcu, (2,), generator=self.generator))
        if grid is None:
            return self._at_phase(x, tables, dy, dx)
        if tuple(grid.shape) != (x.shape[0], 3):
            raise ValueError(f"grid must be {(x.shape[0], 3)}, got {tuple(grid.shape)}")
        cases = [((dy, dx) if min(y, x_) < 0 else (y % mcu, x_ % mcu), bool(t))
                 for y, x_, t in grid.tolist()]
        out = torch.empty_like(x)
        for (phase, transposed) in set(cases):
            rows = [i for i, c in enumerate(cases) if c == (phase, transposed)]
            table = tables.transpose(-1, -2) if transposed else tables
            out[rows] = self._at_phase(x[rows], table, *phase)
        return out

    def _at_phase(self, x: Tensor, tables: Tensor, dy: int, dx: int) -> Tensor:
        """The round trip with the block grid starting ``dy`` rows and ``dx`` columns before
        the images' corner."""
        mcu = self._mcu
        h, w = x.shape[-2:]
        pad_bottom = -(h + dy) % mcu
        pad_right = -(w + dx) % mcu
        # libjpeg pads partial blocks by repeating the edge pixels.
        padded = F.pad(x * 255.0, (dx, pad_right, dy, pad_bottom), mode="replicate")
        out = self._round_trip(padded, tables)
        return (out[..., dy : dy + h, dx : dx + w] / 255.0).clamp(0.0, 1.0)

    def _round_trip(self, rgb: Tensor, tables: Tensor) -> Tensor:
        """Encode and decode ``(B, 3, H, W)`` RGB on the 0..255 scale, H and W multiples of MCU."""
        dtype = rgb.dtype
        ycc = torch.einsum("ij,bjhw->bihw", self.rgb_to_ycbcr.to(dtype), rgb)
        # libjpeg holds every sample as an 8-bit integer: after colour conversion, after the
        # inverse DCT (clamped to 0..255) and after colour conversion back; rounding at each of
        # those points is worth about 3 dB of agreement with the real codec.
        ycc = _ste_round(ycc)
        # The matrix leaves Cb and Cr centred on 0: the +128 offset and the DCT level shift cancel.
        luma = ycc[:, :1]
        chroma = ycc[:, 1:]
        if self.subsampling == "4:2:0":
            chroma = F.avg_pool2d(chroma, 2)
        luma = self._quantise_blocks(luma - 128.0, tables[0]) + 128.0
        chroma = self._quantise_blocks(chroma, tables[1])
        luma = _ste_round(luma).clamp(0.0, 255.0)
        chroma = _ste_round(chroma).clamp(-_CHROMA_OFFSET, 255.0 - _CHROMA_OFFSET)
        if self.subsampling == "4:2:0":
            chroma = _fancy_upsample_2x(_fancy_upsample_2x(chroma, 2), 3)
        ycc = torch.cat((luma, chroma), 1)
        return _ste_round(torch.einsum("ij,bjhw->bihw", self.ycbcr_to_rgb.to(dtype), ycc))

    def _quantise_blocks(self, plane: Tensor, table: Tensor) -> Tensor:
        """DCT, quantise, dequantise and inverse-DCT every 8×8 block of ``(B, C, H, W)``."""
        b, c, h, w = plane.shape
        d = self.dct.to(plane.dtype)
        blocks = plane.reshape(b, c, h // 8, 8, w // 8, 8)
        coef = torch.einsum("ij,bchjwk,lk->bchiwl", d, blocks, d)
        q = table.reshape(8, 1, 8)
        coef = _ste_round(coef / q) * q
        blocks = torch.einsum("ji,bchjwk,kl->bchiwl", d, coef, d)
        return blocks.reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return (f"quality={self.quality_range}, subsampling={self.subsampling!r}, "
                f"random_grid={self.random_grid}")


class Resize(nn.Module):
    """A site's downscale, then back up to the input size.

    The site shrinks the upload; the editors downstream work on whatever the site serves. Going
    back up keeps the crop's geometry (so the editors' own resize and the losses see the shape
    they expect) while keeping the information loss of the site's resize: detail above the new
    Nyquist frequency is gone. The downscale is antialiased bilinear (a triangle filter widened
    by the scale factor, as Pillow's ``BILINEAR`` reduce and area-averaging resizers behave);
    the upscale is plain bilinear.

    Args:
        max_side: shrink so the input's longest side is at most this (never enlarges); for a
            tensor that is the whole site image.
        scale: a factor in (0, 1], or an inclusive ``(lo, hi)`` range drawn from on each call;
            for a crop of a larger image, the factor the site applies to that image.
        seed: seeds the generator of the scale draws; ``None`` seeds it from the OS.

    Raises:
        ValueError: neither or both of ``max_side`` and ``scale``, or a value out of range.
    """

    def __init__(
        self,
        max_side: int | None = None,
        scale: float | tuple[float, float] | None = None,
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        if (max_side is None) == (scale is None):
            raise ValueError("give exactly one of max_side and scale")
        if max_side is not None and (isinstance(max_side, bool) or max_side < 1):
            raise ValueError(f"max_side must be a positive int, got {max_side!r}")
        self.max_side = max_side
        self.scale_range = (1.0, 1.0)
        if scale is not None:
            lo, hi = _as_range(scale, "scale")
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"scale must lie in (0, 1], got {scale!r}")
            self.scale_range = (lo, hi)
        self.generator = _generator(seed)

    def forward(self, x: Tensor) -> Tensor:
        """Downscale then upscale back.

        Args:
            x: ``(B, 3, H, W)`` floats in [0, 1].

        Returns:
            ``(B, 3, H, W)`` in [0, 1].
        """
        _check_images(x)
        h, w = x.shape[-2:]
        if self.max_side is not None:
            scale = min(1.0, self.max_side / max(h, w))
        else:
            scale = _sample_uniform(*self.scale_range, self.generator)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        if size == (h, w):
            return x
        small = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)

    def extra_repr(self) -> str:
        if self.max_side is not None:
            return f"max_side={self.max_side}"
        return f"scale={self.scale_range}"


class GaussianBlur(nn.Module):
    """A mild separable Gaussian blur with σ drawn on each call.

    Args:
        sigma: σ in pixels, or an inclusive ``(lo, hi)`` range; σ below 0.05 is the identity.
        seed: seeds the generator of the σ draws; ``None`` seeds it from the OS.

    Raises:
        ValueError: a negative σ.
    """

    def __init__(self, sigma: float | tuple[float, float], seed: int | None = 0) -> None:
        super().__init__()
        lo, hi = _as_range(sigma, "sigma")
        if lo < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma!r}")
        self.sigma_range = (lo, hi)
        self.generator = _generator(seed)
        radius = max(1, math.ceil(3 * hi))
        self.register_buffer("offsets", torch.arange(-radius, radius + 1, dtype=torch.float64),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Blur each channel.

        Args:
            x: ``(B, 3, H, W)`` floats in [0, 1].

        Returns:
            ``(B, 3, H, W)`` in [0, 1].
        """
        _check_images(x)
        sigma = _sample_uniform(*self.sigma_range, self.generator)
        if sigma < 0.05:
            return x
        kernel = torch.exp(-0.5 * (self.offsets / sigma) ** 2)
        kernel = (kernel / kernel.sum()).to(x.dtype)
        radius = kernel.numel() // 2
        b, c, h, w = x.shape
        # One single-channel convolution over B·C planes: grouped convolutions with an expanded
        # kernel are orders of magnitude slower on CPU.
        out = F.pad(x, (radius, radius, radius, radius), mode="replicate").reshape(
            b * c, 1, h + 2 * radius, w + 2 * radius
        )
        out = F.conv2d(out, kernel.view(1, 1, 1, -1))
        out = F.conv2d(out, kernel.view(1, 1, -1, 1))
        return out.reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma_range}"


class _CallableStep(nn.Module):
    """Adapts a plain callable so a pipeline can hold it next to modules."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)


class SitePipeline(nn.Module):
    """Applies its steps in order; with no steps it is the identity.

    Args:
        steps: transforms mapping ``(B, 3, H, W)`` to the same shape, modules or plain callables.
    """

    def __init__(self, steps: Sequence[Callable[[Tensor], Tensor]] = ()) -> None:
        super().__init__()
        self.steps = nn.ModuleList(
            s if isinstance(s, nn.Module) else _CallableStep(s) for s in steps
        )

    def forward(self, x: Tensor, grid: Tensor | None = None) -> Tensor:
        """Run every step on ``x``; ``grid`` (see :meth:`DiffJPEG.forward`) goes to the JPEG
        steps."""
        for step in self.steps:
            x = step(x, grid) if isinstance(step, (DiffJPEG, AtSiteScale)) else step(x)
        return x

    def is_deterministic(self, grid_known: bool) -> bool:
        """Whether every call maps an input to the same output: no step draws anything that
        matters (a fixed quality, scale and σ, and a JPEG grid the caller passes for every
        sample when the step would draw it). A plain callable step is not known to be."""
        return all(_is_deterministic(step, grid_known) for step in self.steps)


class AtSiteScale(nn.Module):
    """Steps run on the crop as the site holds it, ``factor`` times finer than the crop:
    a face shrunk to fit the ladder is re-encoded (and blurred) by the site at the photo's
    resolution, where its perturbation is smooth and a codec's 8-px blocks are a fraction of
    the crop's pixels. Upsamples bilinearly, runs the steps, area-averages back.

    Args:
        factor: the integer upsampling factor (≥ 2).
        steps: the site's steps at its own resolution.
    """

    def __init__(self, factor: int, steps: Sequence[nn.Module]) -> None:
        super().__init__()
        if factor < 2:
            raise ValueError(f"factor must be at least 2, got {factor}")
        self.factor = factor
        self.inner = SitePipeline(steps)

    def forward(self, x: Tensor, grid: Tensor | None = None) -> Tensor:
        fine = F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=False)
        return F.avg_pool2d(self.inner(fine, grid), self.factor)  # bilinear stays in [0, 1]


def site_factor(spec: SiteSpec, image_long_side: int, crop_scale: float = 1.0) -> float:
    """Site pixels per crop pixel, as the site pipeline of a crop uses it: below 1, the
    site shrinks the crop by that much; from 1 up, the site holds it at least as finely as
    the crop, rounded to an integer upsampling factor. ``crop_scale`` is the crop's pixels
    per photo pixel (below 1 for a face shrunk to fit the ladder)."""
    site = 1.0
    if spec.max_side is not None and image_long_side > spec.max_side:
        site = spec.max_side / image_long_side
    ratio = site / crop_scale
    return ratio if ratio < 1 else float(max(1, round(ratio)))


def _is_deterministic(step: nn.Module, grid_known: bool) -> bool:
    if isinstance(step, AtSiteScale):
        return step.inner.is_deterministic(grid_known)
    if isinstance(step, DiffJPEG):
        lo, hi = step.quality_range
        return lo == hi and (grid_known or not step.random_grid)
    if isinstance(step, Resize):
        return step.max_side is not None or step.scale_range[0] == step.scale_range[1]
    if isinstance(step, GaussianBlur):
        return step.sigma_range[0] == step.sigma_range[1]
    return False


@dataclass(frozen=True)
class SiteSpec:
    """A parsed ``site_pipeline`` policy mapping.

    Attributes:
        jpeg_quality: inclusive quality range the site re-encodes with, or None (no re-encode).
        max_side: longest side the site shrinks images to, or None.
        blur_sigma: σ range of a mild blur, or None.
        subsampling: chroma subsampling of the re-encode (no effect without ``jpeg_quality``).
    """

    jpeg_quality: tuple[int, int] | None = None
    max_side: int | None = None
    blur_sigma: tuple[float, float] | None = None
    subsampling: Subsampling = "4:2:0"


_SPEC_FIELDS = ("jpeg_quality", "max_side", "blur_sigma", "subsampling")


def _parse_max_side(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 16:
        raise ValueError(f"expected an int >= 16, got {value!r}")
    return value


def _parse_sigma(value: Any) -> tuple[float, float]:
    lo, hi = _as_range(value, "sigma")
    if lo < 0:
        raise ValueError(f"expected sigma >= 0, got {value!r}")
    return lo, hi


def _parse_subsampling(value: Any) -> Subsampling:
    if value not in SUBSAMPLINGS:
        raise ValueError(f"expected one of {SUBSAMPLINGS}, got {value!r}")
    return value  # type: ignore[no-any-return]


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "jpeg_quality": _quality_range,
    "max_side": _parse_max_side,
    "blur_sigma": _parse_sigma,
    "subsampling": _parse_subsampling,
}


def parse_site_spec(spec: Mapping[str, Any]) -> SiteSpec:
    """Validate a policy's ``site_pipeline`` mapping.

    Args:
        spec: e.g. ``{"jpeg_quality": [75, 85], "max_side": 1080, "blur_sigma": [0, 0.5],
            "subsampling": "4:2:0"}``; every key optional, ``None`` values mean absent.

    Returns:
        The parsed spec.

    Raises:
        ConfigError: not a mapping, an unknown key, or a bad value; the message names the field.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"site_pipeline must be a mapping, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(_SPEC_FIELDS))
    if unknown:
        raise ConfigError(
            f"site_pipeline: unknown field(s) {', '.join(map(str, unknown))}; "
            f"known: {', '.join(_SPEC_FIELDS)}"
        )
    parsed: dict[str, Any] = {}
    for name, value in spec.items():
        if value is None:
            continue
        try:
            parsed[name] = _PARSERS[name](value)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"site_pipeline.{name}: {e}") from e
    return SiteSpec(**parsed)


def build_site_pipeline(
    spec: SiteSpec, image_long_side: int | None = None, seed: int | None = 0,
    crop_scale: float = 1.0,
) -> SitePipeline:
    """The crop-level transform for a site: resize, then blur, then JPEG re-encode.

    A site shrinks the whole image to ``max_side``, so a crop of it shrinks by
    ``max_side / image_long_side`` when the image is larger than that, whatever the crop's size.
    A crop already shrunk to fit the ladder (``crop_scale`` < 1) shrinks by that much less;
    where the site holds it finer than the crop (:func:`site_factor` ≥ 2), blur and JPEG
    act there (:class:`AtSiteScale`), not on the crop's coarse pixels.
    The JPEG step draws a random block-grid phase for a crop whose phase the caller does not
    pass (``grid``, see :meth:`DiffJPEG.forward`): a crop's place on the site's grid is
    unknown after a resize, and known (its offset in the image) when the size is kept.

    Args:
        spec: the parsed site behaviour.
        image_long_side: longest side of the image the crops come from; required when
            ``spec.max_side`` is set.
        seed: seeds the steps' generators (each step gets its own, derived from it).
        crop_scale: the crops' pixels per image pixel (1: cut at the photo's resolution).

    Returns:
        The pipeline; the identity when the spec asks for nothing.

    Raises:
        ConfigError: ``max_side`` set without ``image_long_side``, or a non-positive long side.
    """
    def step_seed(i: int) -> int | None:
        return None if seed is None else seed + i

    steps: list[nn.Module] = []
    if spec.max_side is not None and (image_long_side is None or image_long_side < 1):
        raise ConfigError(
            "site_pipeline.max_side needs the image's long side to scale a crop, "
            f"got image_long_side={image_long_side!r}"
        )
    if not 0 < crop_scale <= 1:
        raise ConfigError(f"crop_scale must be in (0, 1], got {crop_scale!r}")
    factor = site_factor(spec, image_long_side or 0, crop_scale)
    if factor < 1:
        steps.append(Resize(scale=factor, seed=step_seed(0)))
    at_site: list[nn.Module] = []
    if spec.blur_sigma is not None and spec.blur_sigma[1] > 0:
        at_site.append(GaussianBlur(spec.blur_sigma, seed=step_seed(1)))
    if spec.jpeg_quality is not None:
        at_site.append(DiffJPEG(spec.jpeg_quality, spec.subsampling, random_grid=True,
                                seed=step_seed(2)))
    steps += [AtSiteScale(int(factor), at_site)] if factor >= 2 and at_site else at_site
    logger.debug("site pipeline for long side %s: %s", image_long_side, steps)
    return SitePipeline(steps)


def site_pipeline_from_spec(
    spec: Mapping[str, Any], image_long_side: int | None = None, seed: int | None = 0
) -> SitePipeline:
    """Parse a policy's ``site_pipeline`` mapping and build its crop-level transform.

    See :func:`parse_site_spec` and :func:`build_site_pipeline`.

    Raises:
        ConfigError: a bad spec (the message names the field), or ``max_side`` without
            ``image_long_side``.
    """
    return build_site_pipeline(parse_site_spec(spec), image_long_side, seed)


def site_pipeline_from_options(
    jpeg_quality: int | None = None,
    max_side: int | None = None,
    image_long_side: int | None = None,
    seed: int | None = 0,
) -> SitePipeline:
    """The crop-level transform for ad-hoc options (``ProtectOptions.site_jpeg_quality``,
    ``site_max_side``), re-encoding with 4:2:0 chroma as sites do.

    Args:
        jpeg_quality: the site's JPEG quality, or None.
        max_side: the site's longest side, or None.
        image_long_side: longest side of the source image; required with ``max_side``.
        seed: seeds the steps' generators.

    Returns:
        The pipeline; the identity when both options are None.

    Raises:
        ConfigError: a bad value (named as ``site_pipeline.<field>``), or ``max_side`` without
            ``image_long_side``.
    """
    return site_pipeline_from_spec(
        {"jpeg_quality": jpeg_quality, "max_side": max_side}, image_long_side, seed
    )
