"""The batched GRASP optimiser: defense, SSIM and low-frequency gradients, conflict projection.

Our reconstruction of GRASP (Li et al., "Towards Imperceptible Adversarial Defense: A
Gradient-Driven Shield against Facial Manipulations", arXiv 2510.01699), following the loop
of shared/design/GRASP.md. N face crops of one size are optimised together; every loss is
per sample, so each face's gradient is its own, and each face stops on its own.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from grasp_guard.defense import diversity, features, losses
from grasp_guard.defense.config import GraspConfig
from grasp_guard.defense.metrics import (
    batch_psnr,
    batch_ssim,
    clean_edits,
    editing_resolutions,
    expand_conditions,
    pair_distortions,
    quantise,
    run_edits,
)
from grasp_guard.defense.projection import resolve_conflicts, smooth
from grasp_guard.defense.transforms import SitePipeline
from grasp_guard.models.editor import Editor

logger = logging.getLogger(__name__)

Transform = Callable[..., torch.Tensor]
Crosstalk = tuple[int, int, torch.Tensor]  # (target sample, source sample, (2, H, H) maps)
_View = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (batch, sample indices) → batch
_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8
# Smallest distance the ``log`` objective takes the log of (an edit not moved at all).
_LOG_FLOOR = 1e-12
_SSIM_GAP_PER_DOUBLING = 0.005
_LAMBDA_MIN, _LAMBDA_MAX = 1e-3, 100.0


@dataclass(frozen=True)
class DefenseResult:
    """What a defense run returns; per-sample fields are (N,) (see :func:`pgd` for per-edit).

    Attributes:
        images: (N, 3, H, W) protected images, quantised to the 8-bit grid, in [0, 1].
        iterations: iterations each sample ran.
        stopped: whether each sample met the stop criterion at a check (every pair past
            threshold × margin on the quantised image, quality floors held) and stopped.
        psnr: PSNR in dB against the input, on 8-bit pixels, over the pixels ``weight``
            lets change (a crop's padding past the image border is not counted).
        ssim: SSIM against the input, on 8-bit pixels, over the same pixels as ``psnr``.
        distortion: mean over (editor, edit) of MSE(G(x_adv, c), G(x, c)) on [-1, 1].
        dsr: share of (editor, edit) pairs past the success threshold (no margin, by
            ``config.success_metric``), on the returned image without transform.
        seconds: wall time of the run.
    """

    images: torch.Tensor
    iterations: torch.Tensor
    stopped: torch.Tensor
    psnr: torch.Tensor
    ssim: torch.Tensor
    distortion: torch.Tensor
    dsr: torch.Tensor
    seconds: float


@dataclass(frozen=True)
class _Target:
    """One editor at one editing resolution: conditions (N, E, C), clean edits, CMUA masks."""

    editor: Editor
    resolution: int
    conditions: torch.Tensor
    clean: torch.Tensor
    mask: torch.Tensor


@contextlib.contextmanager
def _frozen(editors: Sequence[Editor]) -> Iterator[None]:
    """Eval mode and no parameter gradients for the run; both restored afterwards."""
    saved = [(e.training, [p.requires_grad for p in e.parameters()]) for e in editors]
    try:
        for e in editors:
            e.eval().requires_grad_(False)
        yield
    finally:
        for e, (training, flags) in zip(editors, saved):
            e.train(training)
            for p, flag in zip(e.parameters(), flags):
                p.requires_grad_(flag)


def _validate(x: torch.Tensor, editors: Sequence[Editor],
              conditions: Sequence[torch.Tensor | None] | None) -> None:
    if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point() or x.shape[0] < 1:
        raise ValueError(f"x must be a float (N, 3, H, W) tensor, got {x.dtype} {tuple(x.shape)}")
    if min(x.shape[-2:]) < losses.SSIM_WINDOW:
        raise ValueError(f"crops must be at least {losses.SSIM_WINDOW} px a side, "
                         f"got {tuple(x.shape[-2:])}")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"x must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    if not editors:
        raise ValueError("at least one editor is needed")
    if conditions is not None and len(conditions) != len(editors):
        raise ValueError(f"conditions must hold one entry per editor ({len(editors)}), "
                         f"got {len(conditions)}")


#: Per editor (by id), its sizes' (weight, term) pairs: losses (n_a,) or gradients.
_Terms = dict[int, list[tuple[torch.Tensor, torch.Tensor]]]


def _over_editors(terms: _Terms) -> torch.Tensor:
    """Each editor's weighted mean of its terms, then the mean over editors; a weight (n_a,)
    applies per sample whatever the terms' shape."""
    def weighted(w: torch.Tensor, term: torch.Tensor) -> torch.Tensor:
        return w.view(-1, *(1,) * (term.dim() - 1)) * term

    return torch.stack([sum(weighted(w, term) for w, term in v)
                        / sum(w for w, _ in v).view(-1, *(1,) * (v[0][1].dim() - 1))
                        for v in terms.values()]).mean(dim=0)


def _rms_normalise(g: torch.Tensor) -> torch.Tensor:
    rms = g.flatten(1).square().mean(dim=1).sqrt().view(-1, 1, 1, 1)
    return g / rms.clamp_min(torch.finfo(g.dtype).tiny)


def _onto_psnr_ball(delta: torch.Tensor, psnr: float | torch.Tensor, sphere: bool = False,
                    seen: torch.Tensor | None = None,
                    support: torch.Tensor | None = None) -> torch.Tensor:
    """Scale each sample's δ so its MSE is at most (``sphere``: exactly) that of ``psnr`` dB
    (one level, or (N,) levels); measured on ``seen``, the linear image of δ that reaches
    the image, when given, and over each sample's ``support`` (N,), the share of its pixels
    δ may change, when given."""
    max_mse = 10.0 ** (-psnr / 10.0)
    if support is not None:
        max_mse = max_mse * support
    mse = (delta if seen is None else seen).flatten(1).square().mean(dim=1).clamp_min(1e-20)
    scale = (max_mse / mse).sqrt()
    if not sphere:
        scale = scale.clamp(max=1.0)
    return delta * scale.view(-1, 1, 1, 1)


def _native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (else autocast would emulate it)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        probes = [getattr(torch.cpu, name, None)
                  for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(probe is not None and probe() for probe in probes)
    return False


def _gradient_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The lower-precision dtype of the gradient passes, or ``None`` for float32."""
    if precision == "bfloat16" or (precision == "auto" and _native_bf16(device)):
        return torch.bfloat16
    return None


def _success(mse: torch.Tensor, cmua: torch.Tensor, threshold: float,
             metric: str) -> torch.Tensor:
    """Per-pair success by ``metric`` (an empty CMUA mask has distance 0: a failure)."""
    if metric == "cmua":
        return cmua > threshold
    if metric == "ruiz":
        return mse > threshold
    return (cmua > threshold) & (mse > threshold)


class _Run:
    """State of one batched GRASP run; :meth:`solve` is the loop of GRASP.md."""

    def __init__(self, x: torch.Tensor, targets: list[_Target], config: GraspConfig,
                 transform: Transform | None, weight: torch.Tensor | None = None,
                 delivery: torch.Tensor | None = None, grid: torch.Tensor | None = None,
                 crosstalk: Sequence[Crosstalk] = (),
                 budget_share: torch.Tensor | None = None,
                 context: torch.Tensor | None = None,
                 init: torch.Tensor | None = None) -> None:
        self.x = x
        self.targets = targets
        self.cfg = config
        self.transform = transform
        self.delivery = delivery
        self.crosstalk = list(crosstalk)
        self.context = context
        # each sample's PSNR budget: the configured one, raised where it has a share of it
        self.psnr_budget: float | torch.Tensor | None = config.psnr_budget
        if config.psnr_budget is not None and budget_share is not None:
            self.psnr_budget = config.psnr_budget - 10.0 * torch.log10(
                budget_share.to(x.device, torch.float64))
        # samples joined by crosstalk are one problem: they stop together and keep the
        # check that served them best together (each sample's label: its group's smallest)
        self.group = _groups(x.shape[0], [(t, s) for t, s, _ in self.crosstalk]).to(x.device)
        self.grid = None if grid is None else grid.to(x.device)  # indexed by x's indices
        self.gradient_dtype = _gradient_dtype(config.precision, x.device)
        # Where each sample may change, in [0, 1]: every step is scaled by it, so δ is
        # exactly the perturbation that will be pasted (feathered face regions).
        self.weight = torch.ones_like(x[:, :1]) if weight is None else weight
        # The pixels of each crop δ may change, and their share: a crop cut past the image
        # border is padded, and those pixels (weight 0) are not the photo's. PSNR and SSIM
        # are over the rest.
        self.inside = self.weight > 0
        self.support = self.inside.flatten(1).to(x.dtype).mean(dim=1).clamp_min(1e-6)
        self.everywhere = bool((self.support == 1).all())
        n = x.shape[0]
        self.warm = init is not None
        if init is not None:
            self.delta = (x + init).clamp(0.0, 1.0) - x
        elif config.init == "uniform":
            # one seeded draw shared by every sample: a face's result does not depend on
            # which batch it ran in
            gen = torch.Generator(device=x.device).manual_seed(config.seed)
            r = config.init_scale * config.eps
            noise = torch.empty((1, *x.shape[1:]), dtype=x.dtype, device=x.device)
            noise.uniform_(-r, r, generator=gen)
            self.delta = (x + noise * self.weight).clamp(0.0, 1.0) - x
        else:
            self.delta = torch.zeros_like(x)
        self.adam: tuple[torch.Tensor, torch.Tensor] | None = None
        if config.step_rule == "adam":
            self.adam = (torch.zeros_like(x), torch.zeros_like(x))
        self.iterations = torch.full((n,), config.steps, dtype=torch.long)
        self.stopped = torch.zeros(n, dtype=torch.bool)
        # the targets of each editor, one per editing resolution
        self.by_editor: dict[int, list[int]] = {}
        for i, t in enumerate(targets):
            self.by_editor.setdefault(id(t.editor), []).append(i)
        self.scale_rng = torch.Generator().manual_seed(config.seed)
        # each target's weight in its editor's defense loss (crop side / size)^shrink_weighting
        self.loss_weight = [max(1.0, x.shape[-1] / t.resolution) ** config.shrink_weighting
                            for t in targets]
        # its own stream (seed + 1), so turning diversity on leaves the scale draws as they were
        self.diversity_rng = torch.Generator().manual_seed(config.seed + 1)
        # which target each pair column of _pair_stats belongs to, and which targets some
        # running sample still fails (all of them until the first check)
        self.pair_target = torch.cat([torch.full((t.conditions.shape[1],), k, dtype=torch.long)
                                      for k, t in enumerate(targets)])
        self.unsolved = torch.ones(len(targets), dtype=torch.bool)
        # which targets each sample disrupted at the last check, on every view it judges
        # (none before the first)
        self.solved = torch.zeros((n, len(targets)), dtype=torch.bool, device=x.device)
        self.lambda_ssim = torch.full((n,), config.lambda_ssim, dtype=x.dtype, device=x.device)
        # the best δ each sample reached at a check (most targets disrupted, then closest to
        # disrupting the rest; the later of equals): the loop returns it, not the last step's
        self.best_delta = self.delta.clone()
        self.best_score = torch.full((n,), -math.inf, dtype=torch.float64, device=x.device)
        # a site pipeline that draws nothing (fixed quality, every sample's block grid known)
        # gives the clean crops the same copy at every check
        self.site_is_fixed = isinstance(transform, SitePipeline) and transform.is_deterministic(
            grid is not None and bool((grid[:, :2] >= 0).all()))
        self.check_views: list[tuple[_View, list[tuple[torch.Tensor, torch.Tensor]] | None]] \
            | None = None

    def _adapt_lambda_ssim(self, idx: torch.Tensor, ssim: torch.Tensor) -> None:
        """Dual ascent on the SSIM target, protection first: a sample that disrupted every
        edit at the last check has its λ_ssim doubled per 0.005 of SSIM it lacks and halved
        per 0.005 it has to spare, so the perturbation is made as structured as the target
        allows and no more (the PSNR sphere fixes its size); a sample not yet disrupting
        halves its λ_ssim back towards the configured one. Where the target cannot be met at
        the budget (large, smooth faces), it then never outweighs the defense."""
        assert self.cfg.ssim_target is not None
        gap = (self.cfg.ssim_target - ssim.to(self.lambda_ssim.dtype)) / _SSIM_GAP_PER_DOUBLING
        disrupting = self.solved[idx].all(dim=1)
        gap = torch.where(disrupting, gap.clamp(-1.0, 1.0), torch.full_like(gap, -1.0))
        lam = self.lambda_ssim[idx] * torch.exp2(gap)
        floor = torch.where(disrupting, _LAMBDA_MIN, self.cfg.lambda_ssim)
        self.lambda_ssim[idx] = torch.maximum(lam, torch.as_tensor(floor)).clamp(max=_LAMBDA_MAX)

    def _step_targets(self) -> list[int]:
        """The targets one step optimises: every one, or one resolution per editor drawn at
        random (expectation over the sizes an attacker may edit at) — under ``focus``, drawn
        among the resolutions that some running sample still fails at the last check."""
        if self.cfg.scale_sampling == "all":
            return list(range(len(self.targets)))
        picks = []
        for group in self.by_editor.values():
            if self.cfg.scale_sampling == "focus":
                group = [k for k in group if self.unsolved[k]] or group
            k = int(torch.randint(len(group), (1,), generator=self.scale_rng))
            picks.append(group[k])
        return picks

    def _delivered(self, delta: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """δ of samples ``idx`` as the re-cut crop carries it: M_rowsᵀ δ M_columns per
        sample."""
        if self.delivery is None:
            return delta
        rows, columns = self.delivery[idx, :1], self.delivery[idx, 1:]
        return rows.transpose(-1, -2) @ delta @ columns

    def _seen(self, x: torch.Tensor, delta: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The crops ``idx`` as they will be re-cut from the protected image: their own δ
        delivered, what overlapping neighbours paste into them, and the fixed ``context``."""
        seen = x + self._delivered(delta, idx)
        if self.crosstalk:
            seen = seen + self._from_neighbours(delta, idx)
        if self.context is not None:
            seen = seen + self.context[idx]
        return seen.clamp(0.0, 1.0)

    def _from_neighbours(self, delta: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Σ_j Rᵀ δ_j C over each sample's overlapping neighbours j: an active neighbour's
        δ as given (the gradient reaches it: overlapping faces are optimised jointly), a
        stopped one's as it stands."""
        slot = {int(k): p for p, k in enumerate(idx.tolist())}
        terms = [torch.zeros_like(delta[0]) for _ in slot]
        for target, source, maps in self.crosstalk:
            if target not in slot:
                continue
            d = delta[slot[source]] if source in slot else self.delta[source]
            terms[slot[target]] = terms[slot[target]] + maps[0].T @ d @ maps[1]
        return torch.stack(terms)

    def _editing(self, on_gradient_step: bool) -> contextlib.AbstractContextManager[None]:
        """Autocast to :attr:`GraspConfig.precision` for the editors' passes of a gradient
        step; float32 for everything else (checks, results)."""
        dtype = self.gradient_dtype if on_gradient_step else None
        return torch.autocast(self.x.device.type, dtype=dtype or torch.bfloat16,
                              enabled=dtype is not None)

    def _stored_refs(self, idx: torch.Tensor,
                     chosen: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The ``chosen`` targets' clean edits and CMUA masks of the active samples."""
        return [(self.targets[k].clean[idx], self.targets[k].mask[idx]) for k in chosen]

    def _site(self, batch: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``batch`` (samples ``idx``, repeated) through the site transform, on each sample's
        block grid where it is known."""
        assert self.transform is not None
        if self.grid is None:
            return self.transform(batch)
        return self.transform(batch, grid=self.grid[idx].repeat(len(batch) // len(idx), 1))

    def _step_view(self) -> _View | None:
        """What the editors see x' through on this step: the site transform, then (under
        ``input_diversity``) this step's random zoom and shift; ``None`` when neither."""
        zoom = None
        if self.cfg.input_diversity > 0:
            zoom = diversity.draw(self.diversity_rng, self.cfg.input_diversity,
                                  self.cfg.diversity_prob,
                                  (self.x.shape[-2], self.x.shape[-1]))
        if self.transform is None:
            return None if zoom is None else lambda b, _: zoom(b)
        if zoom is None:
            return self._site
        return lambda b, idx: zoom(self._site(b, idx))

    def _through_transform(
        self, view: _View, xp: torch.Tensor, idx: torch.Tensor, chosen: Sequence[int],
        on_gradient_step: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """x' and the clean crops through ONE draw of ``view``, and the clean side's edits
        (in the gradient steps' precision ``on_gradient_step``).

        What a site's copy is measured against is the clean image through the same processing,
        so the loss must not credit the processing's own damage to the perturbation.
        """
        n_a = len(idx)
        both = view(torch.cat([xp, self.x[idx]]), idx)
        x_t, clean_t = both[:n_a], both[n_a:].detach()
        with self._editing(on_gradient_step):
            refs = [clean_edits(self.targets[k].editor, clean_t, self.targets[k].conditions[idx],
                                self.targets[k].resolution) for k in chosen]
        return x_t, clean_t, [(clean.float(), mask) for clean, mask in refs]

    def _defense_terms(self, x_in: torch.Tensor, idx: torch.Tensor, chosen: Sequence[int],
                       refs: list[tuple[torch.Tensor, torch.Tensor]]) -> _Terms:
        """The terms of L_def of the active samples, per editor a (weight, loss) per size,
        (n_a,) each: D(G_m(R_m(x'), c), y[m, c]) averaged over the size's edits. L_def
        averages them over each editor's sizes, then over editors (:func:`_over_editors`),
        so every editor weighs the same however many edits it makes (five StarGAN edits do
        not outvote one CycleGAN translation). Within an editor each size weighs
        ``loss_weight``, times ``solved_weight`` where the sample disrupted it at the last
        check."""
        per_editor: _Terms = {}
        settled = torch.where(self.solved[idx], self.cfg.solved_weight, 1.0)
        for k, (clean, mask) in zip(chosen, refs):
            t = self.targets[k]
            with self._editing(True):
                out = run_edits(t.editor, x_in, t.conditions[idx], t.resolution).float()
            flat_mask = mask.flatten(0, 1) if self.cfg.masked_loss else None
            d = losses.defense_loss(out.flatten(0, 1), clean.flatten(0, 1), flat_mask)
            pairs = d.view(len(idx), -1)
            if self.cfg.objective == "hinge":
                pairs = pairs.clamp(max=self.cfg.success_threshold * self.cfg.margin)
            elif self.cfg.objective == "log":
                pairs = pairs.clamp_min(_LOG_FLOOR).log()
            weight = self.loss_weight[k] * settled[:, k]
            per_editor.setdefault(id(t.editor), []).append((weight, pairs.mean(dim=1)))
        return per_editor

    def _pair_stats(self, x_in: torch.Tensor, idx: torch.Tensor,
                    refs: list[tuple[torch.Tensor, torch.Tensor]]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pair MSE and CMUA distance of (quantised) images against every target, without
        gradients: (n_a, P)."""
        mse, cmua = [], []
        with torch.no_grad():
            for t, (clean, mask) in zip(self.targets, refs):
                out = run_edits(t.editor, x_in, t.conditions[idx], t.resolution)
                m, c = pair_distortions(out, clean, mask)
                mse.append(m)
                cmua.append(c)
        return torch.cat(mse, dim=1), torch.cat(cmua, dim=1)

    def _succeeds(self, x_in: torch.Tensor, idx: torch.Tensor, threshold: float,
                  refs: list[tuple[torch.Tensor, torch.Tensor]]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Whether each sample clears ``threshold`` on every pair of each target, (n_a, T),
        and how close it comes over all pairs: the mean of distance / threshold capped at 1,
        (n_a,) (the distance the metric judges by; the smaller of the two under ``both``)."""
        mse, cmua = self._pair_stats(x_in, idx, refs)
        ok = _success(mse, cmua, threshold, self.cfg.success_metric)
        judged = {"cmua": cmua, "ruiz": mse}.get(self.cfg.success_metric, torch.minimum(mse, cmua))
        closeness = (judged.double() / threshold).clamp(max=1.0).mean(dim=1)
        per_target = torch.stack([ok[:, self.pair_target == k].all(dim=1)
                                  for k in range(len(self.targets))], dim=1)
        return per_target, closeness

    def _quality_holds(self, psnr: torch.Tensor, ssim: torch.Tensor) -> torch.Tensor:
        ok = torch.ones(psnr.shape, dtype=torch.bool, device=psnr.device)
        if self.cfg.psnr_floor is not None:
            ok &= psnr >= self.cfg.psnr_floor
        if self.cfg.ssim_floor is not None:
            ok &= ssim >= self.cfg.ssim_floor
        return ok

    def _targets_hold(self, ssim: torch.Tensor) -> torch.Tensor:
        """Whether each sample meets the SSIM target (always, when there is none)."""
        if self.cfg.ssim_target is None or self.cfg.lambda_ssim == 0:
            return torch.ones(ssim.shape, dtype=torch.bool, device=ssim.device)
        return ssim >= self.cfg.ssim_target

    def _gradient(self, idx: torch.Tensor) -> torch.Tensor:
        """The combined ascent direction g of the active samples: (n_a, 3, H, W)."""
        cfg = self.cfg
        xa = self.x[idx]
        d = self.delta[idx].requires_grad_(True)
        xp = self._seen(xa, d, idx)
        chosen = self._step_targets()
        view = self._step_view()
        if view is not None:
            x_in, clean_in, refs = self._through_transform(view, xp, idx, chosen, True)
        else:
            x_in, clean_in, refs = xp, xa, self._stored_refs(idx, chosen)
        tapped = [self.targets[k] for k in chosen] if cfg.feature_weight > 0 else []
        with features.FeatureTap([t.editor for t in tapped]) as tap:
            terms = self._defense_terms(x_in, idx, chosen, refs)
        if tapped:
            with self._editing(True):
                l_feat = features.feature_loss(
                    tap, [(t.editor, t.conditions[idx], t.resolution) for t in tapped], clean_in)
        s = losses.ssim(xp, xa, inside=self._inside(idx))
        visuals: list[tuple[torch.Tensor | float, torch.Tensor]] = []
        if cfg.lambda_ssim > 0:
            (g,) = torch.autograd.grad((1.0 - s).sum(), d, retain_graph=True)
            visuals.append((self.lambda_ssim[idx].view(-1, 1, 1, 1), -g))
            if cfg.ssim_target is not None:
                self._adapt_lambda_ssim(idx, s.detach())
        if cfg.lambda_lf > 0:
            l_lf = losses.low_frequency_loss(xp, xa, cfg.lf_operator, cfg.lf_sigma,
                                             cfg.lf_levels, cfg.lf_band)
            (g,) = torch.autograd.grad(l_lf.sum(), d, retain_graph=True)
            visuals.append((cfg.lambda_lf, -g))
        if cfg.size_balance:
            g_d = _over_editors({
                e: [(w, _rms_normalise(torch.autograd.grad(loss.sum(), d, retain_graph=True)[0]))
                    for w, loss in v] for e, v in terms.items()})
        else:
            l_def = _over_editors(terms)
            if tapped:
                l_def = l_def + cfg.feature_weight * l_feat.float()
            (g_d,) = torch.autograd.grad(l_def.sum(), d)
        weights = [w for w, _ in visuals]
        grads = [g_d] + [g for _, g in visuals]
        if cfg.normalize:
            grads = [_rms_normalise(g) for g in grads]
        if cfg.smoothing == "before":
            grads = [smooth(g, cfg.smooth_kernel, cfg.smooth_sigma) for g in grads]
        g_d, g_vs = resolve_conflicts(grads[0], grads[1:], cfg.projection, cfg.cross_projection)
        g_visual = sum((w * g for w, g in zip(weights, g_vs)), torch.zeros_like(g_d))
        g = g_d + g_visual
        if cfg.psnr_floor is not None or cfg.ssim_floor is not None:
            with torch.no_grad():
                mse = (xp - xa).flatten(1).square().mean(dim=1).double()
                psnr = 10.0 * torch.log10(1.0 / mse)
                below = ~self._quality_holds(psnr, s.detach().double())
            # under the floor, step on quality alone: the projected visual gradients do not
            # undo defense to first order
            g = torch.where(below.view(-1, 1, 1, 1), g_visual, g)
        if cfg.smoothing == "after":
            g = smooth(g, cfg.smooth_kernel, cfg.smooth_sigma)
        return g

    def _step(self, g: torch.Tensor, idx: torch.Tensor, t: int) -> torch.Tensor:
        rule = self.cfg.step_rule
        if rule == "sign":
            return g.sign()
        if rule == "l2":
            return _rms_normalise(g)
        assert self.adam is not None
        m, v = self.adam
        b1, b2 = _ADAM_BETAS
        m[idx] = b1 * m[idx] + (1 - b1) * g
        v[idx] = b2 * v[idx] + (1 - b2) * g.square()
        m_hat = m[idx] / (1 - b1**t)
        v_hat = v[idx] / (1 - b2**t)
        return m_hat / (v_hat.sqrt() + _ADAM_EPS)

    def _done(self, idx: torch.Tensor) -> torch.Tensor:
        """Which active samples clear threshold × margin on the quantised image, floors held."""
        cfg = self.cfg
        xa = self.x[idx]
        xq = quantise(self._seen(xa, self.delta[idx], idx))
        threshold = cfg.success_threshold * cfg.margin
        every = range(len(self.targets))
        ok, closeness = self._succeeds(xq, idx, threshold, self._stored_refs(idx, every))
        judged: list[tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]] = []
        for view, clean in self._check_views():
            with torch.no_grad():
                if clean is None:
                    xt, _, refs = self._through_transform(view, xq, idx, every)
                else:
                    xt, refs = view(xq, idx), [(c[idx], m[idx]) for c, m in clean]
            judged.append((xt, refs))
        for xt, refs in judged:
            ok_t, closeness_t = self._succeeds(xt, idx, threshold, refs)
            ok &= ok_t
            closeness = torch.minimum(closeness, closeness_t)
        self.unsolved = ~ok.all(dim=0).cpu()
        self.solved[idx] = ok
        self._keep_best(idx, ok.sum(dim=1).double() + closeness)
        ssim = batch_ssim(xq, xa, self._inside(idx))
        return (ok.all(dim=1) & self._quality_holds(self._psnr(xq, idx), ssim)
                & self._targets_hold(ssim))

    def _check_views(self) -> list[tuple[_View, list[tuple[torch.Tensor, torch.Tensor]] | None]]:
        """The views the checks judge x' through besides our own crop: the site's copy, and
        under ``check_framings`` the attacker's fixed framings (of the site's copy), each with
        every sample's clean edits and masks through it per target. Those are made once per
        run where the view is deterministic (no transform, or a site pipeline that draws
        nothing); ``None`` where it draws: the clean side then goes through each check's own
        draw (:meth:`_through_transform`)."""
        if self.check_views is None:
            views: list[_View] = [self._site] if self.transform is not None else []
            if self.cfg.check_framings:
                base: _View = self._site if self.transform is not None else lambda b, _: b
                views += [lambda b, i, f=framing: f(base(b, i))
                          for framing in diversity.framings(self.x.shape[-1])]
            every = torch.arange(self.x.shape[0], device=self.x.device)
            fixed = self.transform is None or self.site_is_fixed
            self.check_views = [
                (view, [clean_edits(t.editor, view(self.x, every), t.conditions, t.resolution)
                        for t in self.targets] if fixed else None)
                for view in views]
        return self.check_views

    @property
    def _checks(self) -> bool:
        """Whether the loop checks its samples: for the early stop, or to steer SSIM."""
        cfg = self.cfg
        return cfg.early_stop or (cfg.ssim_target is not None and cfg.lambda_ssim > 0)

    def _inside(self, idx: torch.Tensor) -> torch.Tensor | None:
        """The pixels of samples ``idx`` that SSIM is over: ``None`` (all of them) when δ may
        change every pixel of every crop."""
        return None if self.everywhere else self.inside[idx]

    def _psnr(self, seen: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """8-bit PSNR of samples ``idx`` (their crops as re-cut, ``seen``) over the pixels
        δ may change: the crop's PSNR, its padding (a mirror of those pixels) left out."""
        xa = self.x[idx]
        inside = torch.where(self.inside[idx], seen, xa)
        return batch_psnr(inside, xa) + 10.0 * torch.log10(self.support[idx].double())

    def _jointly(self, idx: torch.Tensor, values: torch.Tensor, how: str) -> torch.Tensor:
        """``values`` of samples ``idx`` reduced over each sample's crosstalk group
        (``sum`` or ``amin``), handed back to every member."""
        if not self.crosstalk:
            return values
        group = self.group[idx]
        init = torch.zeros if how == "sum" else torch.ones
        pooled = init(self.x.shape[0], dtype=values.dtype, device=values.device)
        return pooled.scatter_reduce(0, group, values, how, include_self=how != "sum")[group]

    def _keep_best(self, idx: torch.Tensor, score: torch.Tensor) -> None:
        """Remember δ of the samples whose check ``score`` (their crosstalk group's total) is
        at least their best so far."""
        score = self._jointly(idx, score, "sum")
        better = score >= self.best_score[idx]
        won = idx[better]
        self.best_score[won] = score[better]
        self.best_delta[won] = self.delta[won]

    def solve(self) -> None:
        """Run the steps; a sample that never stopped ends on its best δ at a check.

        The hinge and the PSNR sphere make the last step a poor choice: a size disrupted
        early stops pulling and its part of δ shrinks under the later steps' projections, so
        the disruption comes and goes; the check that saw the most of it is kept.
        """
        cfg = self.cfg
        active = self._steps()
        if self._checks and len(active):
            if cfg.steps % cfg.check_every:
                self._done(active)  # the last step's δ competes too
            self.delta[active] = self.best_delta[active]

    def _steps(self) -> torch.Tensor:
        """The steps of GRASP.md; returns the samples still running at the end. A warm start
        is judged before the first step: by the checks' score (edits disrupted, then how
        close the rest are) a run never ends worse than it began, and one already done
        stops at once. (λ_ssim starts again at ``lambda_ssim``.)"""
        cfg = self.cfg
        active = torch.arange(self.x.shape[0], device=self.x.device)
        if self.warm and self._checks:
            active = self._check(active, 0)
        for t in range(1, cfg.steps + 1):
            if len(active) == 0:
                break
            g = self._gradient(active)
            with torch.no_grad():
                xa = self.x[active]
                step = self.weight[active] * self._step(g, active, t)
                new = self.delta[active] + cfg.step_size(t) * step
                if self.psnr_budget is not None:
                    seen = self._delivered(new, active) * self.inside[active]
                    budget = (self.psnr_budget[active].to(new.dtype)
                              if isinstance(self.psnr_budget, torch.Tensor) else self.psnr_budget)
                    new = _onto_psnr_ball(new, budget, cfg.spend_budget, seen,
                                          self.support[active])
                new = new.clamp(-cfg.eps, cfg.eps)
                self.delta[active] = (xa + new).clamp(0.0, 1.0) - xa
            if self._checks and t % cfg.check_every == 0:
                active = self._check(active, t)
        return active

    def _check(self, active: torch.Tensor, t: int) -> torch.Tensor:
        """Judge the running samples after step ``t`` (which also tells the SSIM steering
        who is disrupting); returns those still running: with the early stop, the done stop."""
        done = self._jointly(active, self._done(active).to(torch.uint8), "amin").bool()
        if not self.cfg.early_stop:
            return active
        finished = active[done].cpu()
        self.iterations[finished] = t
        self.stopped[finished] = True
        active = active[~done]
        logger.debug("step %d: %d of %d samples still running", t, len(active), self.x.shape[0])
        return active

    def result(self, seconds: float) -> DefenseResult:
        images = quantise(self.x + self.delta)
        idx = torch.arange(self.x.shape[0], device=self.x.device)
        pasted_as_is = self.delivery is None and not self.crosstalk and self.context is None
        seen = images if pasted_as_is else quantise(self._seen(self.x, self.delta, idx))
        mse, cmua = self._pair_stats(seen, idx, self._stored_refs(idx, range(len(self.targets))))
        success = _success(mse, cmua, self.cfg.success_threshold, self.cfg.success_metric)
        return DefenseResult(
            images=images,
            iterations=self.iterations,
            stopped=self.stopped,
            psnr=self._psnr(seen, idx).cpu(),
            ssim=batch_ssim(seen, self.x, self._inside(idx)).cpu(),
            distortion=mse.mean(dim=1).cpu(),
            dsr=success.double().mean(dim=1).cpu(),
            seconds=seconds,
        )


def grasp(
    x: torch.Tensor,
    editors: Sequence[Editor],
    config: GraspConfig,
    transform: Transform | None = None,
    conditions: Sequence[torch.Tensor | None] | None = None,
    weight: torch.Tensor | None = None,
    delivery: torch.Tensor | None = None,
    grid: torch.Tensor | None = None,
    crosstalk: Sequence[Crosstalk] = (),
    budget_share: torch.Tensor | None = None,
    context: torch.Tensor | None = None,
    init: torch.Tensor | None = None,
) -> DefenseResult:
    """Protect a batch of face crops against every editor and edit at once.

    Args:
        x: (N, 3, H, W) crops in [0, 1] at their own resolution (H, W ≥ 11); each editor sees
            them through a differentiable antialiased resize to its resolution.
        editors: surrogate editors, frozen for the run (mode and flags restored after). A
            fully convolutional editor is attacked at every size it may edit the crop at
            (:func:`~grasp_guard.defense.metrics.editing_resolutions`), each a target.
        config: the loop's settings.
        transform: an optional differentiable (B, 3, H, W) → same map in [0, 1] (JPEG,
            resize, blur; may be random per call for EOT), applied to x' before the resize.
            The loss then compares G(T(x')) with G(T(x)) under the same draw (not with G(x):
            the processing's own damage is no protection), and the early stop asks for
            success both with and without it.
        conditions: per editor, (E, C) edits for every image or (N, E, C) per image; the
            editor's standard edits for an entry (or the whole argument) left ``None``.
        weight: (N, 1, H, W) in [0, 1], how much each pixel may change (the paste's
            feathered face mask); every pixel fully when ``None``. Pixels of weight 0 (a
            crop's padding past the image border) are not the photo's: the PSNR budget and
            the returned PSNR are over the rest.
        delivery: (N, 2, H, H) per-sample row and column matrices of the paste round trip
            of a crop shrunk to fit the ladder or cut past the image border, whose padding
            the re-cut mirrors from the image (``faces.regions.delivery_maps``; the identity
            for one that was neither): the crop re-cut from the protected image carries
            M_rowsᵀ δ M_columns. The editors, the visual losses, the budget and the returned
            statistics all see δ so.
        grid: (N, K) integers per crop, where it lies on the JPEG block grid of the image it
            is pasted into (:meth:`~grasp_guard.defense.transforms.DiffJPEG.forward`: row and
            column phase, transposed or not); passed to the transform as
            ``transform(batch, grid=...)``, so a simulated re-encode of the image at its own
            size quantises the very blocks the real one will.
        crosstalk: (target i, source j, (2, H, H) row and column matrices R, C) per pair of
            overlapping crops (``faces.regions.crosstalk_maps``): the crop i re-cut from the
            protected image also carries Rᵀ δ_j C of its neighbour j, which every view of i
            then includes (its budget stays its own δ's).
        budget_share: (N,) in (0, 1], each sample's share of the PSNR budget's MSE (a group
            photo's overlapping crops: ``faces.sharing.budget_shares``); all of it when
            ``None``.
        context: (N, 3, H, W), what each crop as re-cut carries besides its own and its
            crosstalk neighbours' δ: the perturbation that crops optimised before it (a
            group photo's other crop sizes, ``pipeline.PreparedImage.stages``) pasted into
            it, fixed for the run. Every view of the crop includes it, as crosstalk; its
            budget stays its own δ's.
        init: (N, 3, H, W), the δ each sample starts from instead of ``config.init``'s (a
            warm start: a crop's earlier outcome minus the crop, run again in a new
            ``context``); the steps then go on from it as from any δ.
    Returns:
        The quantised protected images (x + δ, what is pasted) with per-sample iterations
        and final statistics (of the delivered image).
    Raises:
        ValueError: bad shapes or values.
    """
    _validate(x, editors, conditions)
    start = time.perf_counter()
    x = x.detach()
    n = x.shape[0]
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    with _frozen(editors), torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        targets = []
        for i, editor in enumerate(editors):
            given = conditions[i] if conditions is not None else None
            cond = editor.conditions() if given is None else given
            cond = expand_conditions(cond.to(x.device, x.dtype), n)
            for res in editing_resolutions(editor, x.shape[-1]):
                clean, mask = clean_edits(editor, x, cond, res)
                targets.append(_Target(editor, res, cond, clean, mask))
        if weight is not None and tuple(weight.shape) != (n, 1, *x.shape[2:]):
            raise ValueError(f"weight must be {(n, 1, *x.shape[2:])}, got {tuple(weight.shape)}")
        if delivery is not None and tuple(delivery.shape) != (n, 2, x.shape[-2], x.shape[-1]):
            raise ValueError(f"delivery must be {(n, 2, *x.shape[-2:])}, "
                             f"got {tuple(delivery.shape)}")
        if grid is not None and (transform is None or grid.dim() != 2 or len(grid) != n):
            raise ValueError(f"grid must be ({n}, K) and come with a transform, got "
                             f"{tuple(grid.shape)}{'' if transform else ' without one'}")
        for target, source, maps in crosstalk:
            if not (0 <= target < n and 0 <= source < n and target != source
                    and tuple(maps.shape) == (2, x.shape[-2], x.shape[-1])):
                raise ValueError(f"crosstalk ({target}, {source}) must join two of {n} samples "
                                 f"with (2, {x.shape[-2]}, {x.shape[-1]}) maps, got "
                                 f"{tuple(maps.shape)}")
        if budget_share is not None and (tuple(budget_share.shape) != (n,)
                                         or not bool(((budget_share > 0)
                                                      & (budget_share <= 1)).all())):
            raise ValueError(f"budget_share must be ({n},) in (0, 1], got {budget_share}")
        if context is not None and context.shape != x.shape:
            raise ValueError(f"context must be {tuple(x.shape)}, got {tuple(context.shape)}")
        if init is not None and init.shape != x.shape:
            raise ValueError(f"init must be {tuple(x.shape)}, got {tuple(init.shape)}")
        run = _Run(x, targets, config, transform, weight, delivery, grid, crosstalk, budget_share,
                   None if context is None else context.to(x.device, x.dtype),
                   None if init is None else init.to(x.device, x.dtype))
        run.solve()
        result = run.result(time.perf_counter() - start)
    logger.info("grasp: %d samples, %.2f s, mean iterations %.1f, mean PSNR %.2f dB, "
                "mean DSR %.3f", n, result.seconds, result.iterations.double().mean(),
                _finite_mean(result.psnr), result.dsr.mean())
    return result


def _groups(n: int, pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    """The connected components of ``n`` samples joined by ``pairs``: each sample's
    component's smallest index, (n,) long."""
    label = list(range(n))

    def root(i: int) -> int:
        while label[i] != i:
            i = label[i]
        return i

    for a, b in pairs:
        ra, rb = root(a), root(b)
        label[max(ra, rb)] = min(ra, rb)
    return torch.tensor([root(i) for i in range(n)], dtype=torch.long)


def _finite_mean(v: torch.Tensor) -> float:
    finite = v[torch.isfinite(v)]
    return float(finite.mean()) if len(finite) else math.inf
