"""The metrics of shared/design/GRASP.md, and the editor plumbing they are defined on.

- PSNR and SSIM between original and protected 8-bit pixels (whole images and crops); they
  agree with ``skimage.metrics`` (SSIM: Gaussian window σ 1.5, population covariance).
- Distortion per (image, edit): MSE(G(x_adv, c), G(x, c)) on the editor's [-1, 1] scale.
- DSR (Ruiz et al., "Disrupting Deepfakes", 2020): share of pairs with distortion > 0.05.
- DSR (CMUA, Huang et al., "CMUA-Watermark", AAAI 2022): mask = Σ_channels |G(x, c) − x| > 0.5,
  x being the editor's input on [-1, 1]; success when Σ((G(x_adv, c) − G(x, c))·mask)² /
  (3·Σmask) > 0.05; an empty mask is a failure.

Faces arrive at their crop's own resolution; :func:`editor_input` is the one resize that the
loop, the baselines and these metrics all put in front of an editor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from grasp_guard.defense import losses
from grasp_guard.models.editor import Editor

SUCCESS_THRESHOLD = 0.05


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] images to the 8-bit grid: round(clamp(x, 0, 1)·255)/255."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


def editor_input(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Differentiable antialiased bilinear resize R_m of (B, 3, H, W) to (B, 3, res, res)."""
    if x.shape[-2:] == (resolution, resolution):
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear",
                         align_corners=False, antialias=True)


def editing_resolutions(editor: Editor, side: int) -> tuple[int, ...]:
    """The sizes an attacker may run ``editor`` at on a ``side``-px face, ascending.

    A fixed-size editor runs at its own resolution. A fully convolutional one runs at each
    of its listed resolutions up to the first that holds the whole face (an attacker does
    not edit a face above the next size up from its own).
    """
    sizes = editor.info.resolutions
    chosen = [r for r in sizes if r < side]
    chosen += [r for r in sizes if r >= side][:1]
    return tuple(chosen) or (editor.info.resolution,)


def expand_conditions(conditions: torch.Tensor, n: int) -> torch.Tensor:
    """Shared (E, C) conditions broadcast to every image, or per-image (N, E, C): (N, E, C).

    Raises:
        ValueError: wrong rank or a per-image batch that is not ``n`` long.
    """
    if conditions.ndim == 2:
        return conditions.unsqueeze(0).expand(n, -1, -1)
    if conditions.ndim == 3 and conditions.shape[0] == n:
        return conditions
    raise ValueError(f"conditions must be (E, C) or ({n}, E, C), got {tuple(conditions.shape)}")


def run_edits(editor: Editor, x: torch.Tensor, conditions: torch.Tensor,
              resolution: int | None = None) -> torch.Tensor:
    """Every condition of every image in one batched forward.

    Args:
        x: (N, 3, H, W) in [0, 1] at any resolution.
        conditions: (N, E, C) per-image conditions.
        resolution: the size the editor runs at (default: its own ``info.resolution``).
    Returns:
        (N, E, 3, R, R) edits on the editor's [-1, 1] scale.
    """
    n, e, c = conditions.shape
    res = resolution or editor.info.resolution
    xin = editor_input(x, res).repeat_interleave(e, dim=0)
    out = editor(xin, conditions.reshape(n * e, c).to(dtype=x.dtype))
    return out.view(n, e, *out.shape[1:])


def clean_edits(editor: Editor, x: torch.Tensor, conditions: torch.Tensor,
                resolution: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean edits G(R(x), c) at ``resolution`` and their CMUA masks, without gradients.

    Returns:
        (N, E, 3, R, R) edits and (N, E, 1, R, R) masks.
    """
    with torch.no_grad():
        out = run_edits(editor, x, conditions, resolution)
        n, e = out.shape[:2]
        source = Editor.to_model_space(editor_input(x, resolution or editor.info.resolution))
        mask = losses.cmua_mask(out.flatten(0, 1), source.repeat_interleave(e, dim=0))
    return out, mask.view(n, e, *mask.shape[1:])


def pair_distortions(adv: torch.Tensor, clean: torch.Tensor,
                     mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair distortion (MSE) and CMUA distance of (N, E, 3, R, R) edits: two (N, E)."""
    n, e = adv.shape[:2]
    a, c, m = adv.flatten(0, 1), clean.flatten(0, 1), mask.flatten(0, 1)
    return losses.defense_loss(a, c).view(n, e), losses.masked_mse(a, c, m).view(n, e)


def mse(a: np.ndarray, b: np.ndarray, inside: np.ndarray | None = None) -> float:
    """Mean squared error of two uint8 images of one shape, in 8-bit levels squared. Over the
    pixels ``inside`` ((H, W) bool: a crop's part that lies in its photo) only, when given."""
    _check_uint8(a, b)
    squares = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    return float(np.mean(squares if inside is None else squares[_checked_mask(a, inside)]))


def psnr(a: np.ndarray, b: np.ndarray, inside: np.ndarray | None = None) -> float:
    """PSNR in dB of two uint8 images of one shape (data range 255); ``inf`` if identical.
    Over the pixels ``inside`` (see :func:`mse`) only, when given."""
    error = mse(a, b, inside)
    return float("inf") if error == 0 else float(10.0 * np.log10(255.0**2 / error))


def ssim(a: np.ndarray, b: np.ndarray, inside: np.ndarray | None = None) -> float:
    """SSIM of two uint8 images, (H, W) or (H, W, C), as skimage computes it (σ 1.5 window);
    averaged over the windows centred ``inside`` ((H, W) bool) only, when given. A whole
    image is taken in bands of rows (a 16 MP photo at once held 4.4 GB)."""
    _check_uint8(a, b)
    rows = a.shape[0] - (losses.SSIM_WINDOW - 1)  # the windows' centres down the image
    if inside is None and rows > _SSIM_BAND:
        total = 0.0
        for top in range(0, rows, _SSIM_BAND):
            band = slice(top, min(top + _SSIM_BAND, rows) + losses.SSIM_WINDOW - 1)
            total += _ssim(a[band], b[band], None) * (min(top + _SSIM_BAND, rows) - top)
        return total / rows
    return _ssim(a, b, inside)


def _ssim(a: np.ndarray, b: np.ndarray, inside: np.ndarray | None) -> float:
    ta = torch.from_numpy(a.astype(np.float64) / 255.0)
    tb = torch.from_numpy(b.astype(np.float64) / 255.0)
    if ta.ndim == 2:
        ta, tb = ta[None], tb[None]
    else:
        ta, tb = ta.permute(2, 0, 1), tb.permute(2, 0, 1)
    mask = None if inside is None else torch.from_numpy(_checked_mask(a, inside))[None, None]
    return float(losses.ssim(ta[None], tb[None], inside=mask).item())


_SSIM_BAND = 128  # rows of window centres taken at once (about 50 MB for a 5000-px-wide photo)


def _checked_mask(image: np.ndarray, inside: np.ndarray) -> np.ndarray:
    if inside.dtype != np.bool_ or inside.shape != image.shape[:2] or not inside.any():
        raise ValueError(f"inside must be a non-empty {image.shape[:2]} bool mask, got "
                         f"{inside.dtype}{inside.shape}")
    return inside


def batch_psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image of (N, C, H, W) [0, 1] tensors, after 8-bit quantisation: (N,)."""
    mse = (quantise(x) - quantise(y)).double().square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse)


def batch_ssim(x: torch.Tensor, y: torch.Tensor,
               inside: torch.Tensor | None = None) -> torch.Tensor:
    """SSIM per image of (N, C, H, W) [0, 1] tensors, after 8-bit quantisation: (N,); over
    the pixels ``inside`` (N, 1, H, W) only, when given."""
    return losses.ssim(quantise(x).double(), quantise(y).double(), inside=inside)


def _check_uint8(a: np.ndarray, b: np.ndarray) -> None:
    if a.dtype != np.uint8 or b.dtype != np.uint8 or a.shape != b.shape:
        raise ValueError(f"expected two uint8 images of one shape, got {a.dtype}{a.shape} "
                         f"and {b.dtype}{b.shape}")


@dataclass(frozen=True)
class EditMetrics:
    """Per-pair defense metrics of one editor: every field is (N, E)."""

    distortion: torch.Tensor
    cmua_distortion: torch.Tensor
    cmua_success: torch.Tensor
    ruiz_success: torch.Tensor

    @property
    def dsr_cmua(self) -> float:
        return float(self.cmua_success.double().mean())

    @property
    def dsr_ruiz(self) -> float:
        return float(self.ruiz_success.double().mean())

    @property
    def mean_distortion(self) -> float:
        return float(self.distortion.double().mean())


def evaluate_defense(
    editor: Editor,
    x_clean: torch.Tensor,
    x_adv: torch.Tensor,
    conditions: torch.Tensor | None = None,
    threshold: float = SUCCESS_THRESHOLD,
    batch_size: int = 16,
    resolution: int | None = None,
) -> EditMetrics:
    """Distortion and both DSRs of protected images against one editor.

    Args:
        editor: a frozen editor.
        x_clean: (N, 3, H, W) originals in [0, 1] at the crop's resolution.
        x_adv: (N, 3, H, W) protected images, or (N, E, 3, H, W) one per edit (pair (n, e)
            is then ``x_adv[n, e]`` edited with condition e).
        conditions: (E, C) or (N, E, C); the editor's standard edits when ``None``.
        threshold: the success threshold of both DSRs.
        batch_size: images per forward.
        resolution: the size the editor runs at (default: its own ``info.resolution``).
    Returns:
        The per-pair metrics.
    Raises:
        ValueError: shapes that do not match.
    """
    n = x_clean.shape[0]
    cond = expand_conditions(editor.conditions() if conditions is None else conditions, n)
    cond = cond.to(x_clean.device)
    e = cond.shape[1]
    per_edit = x_adv.ndim == 5
    expected = (n, e, *x_clean.shape[1:]) if per_edit else tuple(x_clean.shape)
    if tuple(x_adv.shape) != expected:
        raise ValueError(f"x_adv must be {expected} for x_clean {tuple(x_clean.shape)} and "
                         f"{e} conditions, got {tuple(x_adv.shape)}")
    dist, cmua = [], []
    with torch.no_grad():
        for s in range(0, n, batch_size):
            xc, cc = x_clean[s:s + batch_size], cond[s:s + batch_size]
            clean, mask = clean_edits(editor, xc, cc, resolution)
            if per_edit:
                b = xc.shape[0]
                adv = run_edits(editor, x_adv[s:s + b].flatten(0, 1),
                                cc.reshape(b * e, 1, -1), resolution).view(clean.shape)
            else:
                adv = run_edits(editor, x_adv[s:s + batch_size], cc, resolution)
            d, c = pair_distortions(adv, clean, mask)
            dist.append(d)
            cmua.append(c)
    distortion, cmua_distortion = torch.cat(dist), torch.cat(cmua)
    return EditMetrics(
        distortion=distortion,
        cmua_distortion=cmua_distortion,
        # masked_mse is 0 on an empty mask, so an empty mask never passes the threshold
        cmua_success=cmua_distortion > threshold,
        ruiz_success=distortion > threshold,
    )


def evaluate_editing(
    editor: Editor,
    x_clean: torch.Tensor,
    x_adv: torch.Tensor,
    conditions: torch.Tensor | None = None,
    threshold: float = SUCCESS_THRESHOLD,
) -> EditMetrics:
    """:func:`evaluate_defense` at every size the editor may edit these crops at
    (:func:`editing_resolutions`), each (edit, size) a pair of its own: fields are (N, E·S).

    This is what the loop optimises; a fully convolutional editor judged at one size only
    would say nothing of the others (an attack tuned to one size does not carry to another).
    """
    parts = [evaluate_defense(editor, x_clean, x_adv, conditions, threshold, resolution=res)
             for res in editing_resolutions(editor, x_clean.shape[-1])]
    return EditMetrics(*(torch.cat([getattr(m, f.name) for m in parts], dim=1)
                         for f in dataclasses.fields(EditMetrics)))


ATTACKER_SHIFTS: tuple[tuple[int, int], ...] = ((1, 0), (0, 1), (2, 2), (3, 1), (1, 3), (2, 0))
"""Pixel shifts (dx, dy) of an attacker's crop against ours that :func:`framed_editing` judges
by; with :data:`ATTACKER_ZOOMS`, none of them a framing the loop's checks use."""
ATTACKER_ZOOMS: tuple[float, ...] = (0.93, 1.07)
"""Face sizes of an attacker's crop relative to ours that :func:`framed_editing` judges by."""
_FRAME_PAD = 16


def reframe(x: torch.Tensor, dx: int = 0, dy: int = 0, zoom: float = 1.0) -> torch.Tensor:
    """(..., 3, H, W) crops as another crop of the same neighbourhood frames them: the
    content moved by (``dx``, ``dy``) whole pixels, then zoomed by ``zoom`` about the centre
    (antialiased); the neighbourhood past the crop continued by mirroring."""
    if x.ndim != 4:
        return reframe(x.flatten(0, -4), dx, dy, zoom).view(x.shape)
    h, w = x.shape[-2:]
    p = min(_FRAME_PAD, h - 1, w - 1)
    big = F.pad(x, (p, p, p, p), mode="reflect")
    if zoom != 1.0:
        side = round(big.shape[-1] * zoom), round(big.shape[-2] * zoom)
        big = F.interpolate(big, size=(side[1], side[0]), mode="bilinear", align_corners=False,
                            antialias=True)
        cy, cx = (big.shape[-2] - h) // 2, (big.shape[-1] - w) // 2
    else:
        cy, cx = p, p
    return big[..., cy - dy:cy - dy + h, cx - dx:cx - dx + w]


def framed_editing(editor: Editor, x_clean: torch.Tensor, x_adv: torch.Tensor,
                   conditions: torch.Tensor | None = None,
                   threshold: float = SUCCESS_THRESHOLD) -> EditMetrics:
    """:func:`evaluate_editing` with the attacker's crop a few pixels over or a few per cent
    larger or smaller than ours (:data:`ATTACKER_SHIFTS`, :data:`ATTACKER_ZOOMS`), the clean
    crop framed the same way: fields are (N, E·S·F), F the framings.

    A perturbation tuned to one crop's phase on the editor's strided grid passes at our own
    framing and fails at every other; no attacker crops a face exactly as we do.
    """
    views = [(dx, dy, 1.0) for dx, dy in ATTACKER_SHIFTS] + [(0, 0, z) for z in ATTACKER_ZOOMS]
    parts = [evaluate_editing(editor, reframe(x_clean, dx, dy, z), reframe(x_adv, dx, dy, z),
                              conditions, threshold) for dx, dy, z in views]
    return EditMetrics(*(torch.cat([getattr(m, f.name) for m in parts], dim=1)
                         for f in dataclasses.fields(EditMetrics)))
