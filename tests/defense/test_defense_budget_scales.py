"""The loop spends its PSNR budget, attacks every editing size, and steers SSIM to a target."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_defense_grasp import crops, tiny_stargan

from grasp_guard.defense.baselines import pgd_l2_config
from grasp_guard.defense.config import GraspConfig
from grasp_guard.defense.grasp import _over_editors, _Run, grasp
from grasp_guard.defense.metrics import editing_resolutions, evaluate_defense, evaluate_editing
from grasp_guard.errors import ConfigError
from grasp_guard.models.editor import Editor, EditorInfo

# a threshold no edit reaches: every sample keeps running, as an undisrupted face does
UNREACHED = {"success_threshold": 1e6, "steps": 12, "alpha": 1.0 / 255}


class ConvEditor(Editor):
    """A small fully convolutional editor that records the sizes it is run at."""

    def __init__(self, resolution: int, scales: tuple[int, ...]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.info = EditorInfo("conv", resolution, ("translate",), scales=scales)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(),
                                       torch.nn.Conv2d(8, 3, 3, padding=1), torch.nn.Tanh())
        self.sizes: list[int] = []

    def conditions(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.zeros(1, 0)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[-1])
        return self.net(self.to_model_space(x) * 4)


@pytest.mark.parametrize("level", [38.0, 40.3, 42.0])
def test_an_undisrupted_face_reaches_the_psnr_it_is_allowed(level: float) -> None:
    cfg = GraspConfig(psnr_budget=level, **UNREACHED)
    result = grasp(crops(), [tiny_stargan()], cfg)
    # 8-bit rounding moves the PSNR by a few hundredths of a dB either way
    assert (result.psnr - level).abs().max() <= 0.3


def test_a_face_with_a_share_of_the_budget_spends_that_share() -> None:
    x = crops()
    share = torch.ones(len(x), dtype=torch.float64)
    share[0] = 0.5  # half the MSE: 3 dB more PSNR
    cfg = GraspConfig(psnr_budget=40.3, **UNREACHED)
    result = grasp(x, [tiny_stargan()], cfg, budget_share=share)
    expected = torch.full((len(x),), 40.3, dtype=torch.float64)
    expected[0] += 10 * np.log10(2)
    assert (result.psnr - expected).abs().max() <= 0.3
    with pytest.raises(ValueError, match="budget_share"):
        grasp(x, [tiny_stargan()], cfg, budget_share=torch.zeros(len(x)))


class BlindEditor(ConvEditor):
    """An editor whose output ignores its input: no defense gradient, only the visual ones."""

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return super().forward(x, c) * 0.0


def test_the_visual_terms_shape_the_perturbation_but_do_not_shrink_it() -> None:
    heavy = GraspConfig(psnr_budget=40.3, lambda_ssim=1.0, lambda_lf=0.5, ssim_target=None,
                        **UNREACHED)
    spent = grasp(crops(), [BlindEditor(16, ())], heavy)
    ball = grasp(crops(), [BlindEditor(16, ())], heavy.replace(spend_budget=False))
    assert (spent.psnr - 40.3).abs().max() <= 0.3
    assert (ball.psnr > spent.psnr + 3.0).all()  # on the ball they pull δ back towards 0


@pytest.mark.parametrize(("side", "expected"), [
    (12, (16,)), (16, (16,)), (20, (16, 32)), (32, (16, 32)), (40, (16, 32, 64)), (999, (16, 32, 64)),
])
def test_editing_sizes_stop_at_the_first_that_holds_the_face(side: int,
                                                             expected: tuple[int, ...]) -> None:
    assert editing_resolutions(ConvEditor(32, (16, 64)), side) == expected


def test_a_fixed_size_editor_runs_at_its_own_size() -> None:
    assert editing_resolutions(tiny_stargan(resolution=32), 200) == (32,)


@pytest.mark.parametrize(("sampling", "per_step"), [("all", 2), ("random", 1)])
def test_every_editing_size_is_attacked(sampling: str, per_step: int) -> None:
    editor = ConvEditor(16, (32, 64))
    cfg = GraspConfig(psnr_budget=40.0, scale_sampling=sampling, early_stop=False, steps=8,
                      lambda_ssim=0.0, lambda_lf=0.0)
    result = grasp(crops(size=(32, 32)), [editor], cfg)
    # clean edits at both sizes, one gradient forward per size per step, the result at both
    assert set(editor.sizes) == {16, 32}
    assert len(editor.sizes) == 2 + 8 * per_step + 2
    if sampling == "random":
        steps = editor.sizes[2:-2]
        assert set(steps) == {16, 32}  # the draw visits both sizes in 8 steps
    assert result.dsr.shape == (2,)


def test_the_ssim_target_buys_structure_at_the_same_psnr() -> None:
    # every face disrupts from the first check on (a threshold any change clears), and the
    # defense keeps pulling (no hinge)
    base = GraspConfig(psnr_budget=36.0, lambda_ssim=0.01, lambda_lf=0.0, steps=20,
                       success_threshold=1e-9, objective="mean", alpha=1.0 / 255,
                       ssim_target=None, early_stop=False, check_every=1)
    fixed = grasp(crops(), [tiny_stargan()], base)
    steered = grasp(crops(), [tiny_stargan()], base.replace(ssim_target=0.999))
    assert (steered.psnr - fixed.psnr).abs().max() <= 0.3
    assert (steered.ssim > fixed.ssim + 0.005).all()


def test_the_ssim_target_waits_for_the_protection() -> None:
    # a face not yet disrupting keeps its configured λ_ssim: the target never outweighs
    # the defense while the defense is failing
    base = GraspConfig(psnr_budget=36.0, lambda_ssim=0.01, lambda_lf=0.0, steps=20,
                       success_threshold=1e6, alpha=1.0 / 255, ssim_target=None,
                       early_stop=False, check_every=1)
    fixed = grasp(crops(), [tiny_stargan()], base)
    steered = grasp(crops(), [tiny_stargan()], base.replace(ssim_target=0.999))
    assert torch.allclose(steered.images, fixed.images)


def test_l2_pgd_stays_in_its_psnr_ball() -> None:
    result = grasp(crops(), [tiny_stargan()], pgd_l2_config(38.0, steps=6))
    assert (result.psnr >= 37.7).all()


def test_the_ssim_target_holds_back_the_early_stop() -> None:
    cfg = GraspConfig(psnr_budget=30.0, success_threshold=1e-9, steps=6, check_every=2,
                      ssim_target=0.9999)
    held = grasp(crops(), [tiny_stargan()], cfg)
    assert held.iterations.tolist() == [6, 6] and not held.stopped.any()
    free = grasp(crops(), [tiny_stargan()], cfg.replace(ssim_target=None))
    assert free.iterations.tolist() == [2, 2]


def test_every_editor_weighs_the_same_in_the_defense_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    few, many = ConvEditor(16, ()), tiny_stargan(resolution=16)  # one edit against five
    cfg = GraspConfig(psnr_budget=40.0, steps=1, early_stop=False, lambda_ssim=0.0,
                      lambda_lf=0.0, objective="mean", normalize=False, init="uniform")
    captured: list[torch.Tensor] = []
    original = _Run._defense_terms

    def spy(self: _Run, *args: object) -> dict:
        terms = original(self, *args)  # type: ignore[arg-type]
        captured.append(_over_editors(terms).detach())
        return terms

    monkeypatch.setattr(_Run, "_defense_terms", spy)
    grasp(crops(), [few, many], cfg)
    grasp(crops(), [few], cfg)
    grasp(crops(), [many], cfg)
    both, alone_few, alone_many = captured
    assert torch.allclose(both, (alone_few + alone_many) / 2)


def test_a_fully_convolutional_editor_is_judged_at_each_editing_size() -> None:
    editor = ConvEditor(16, (32, 64))
    x = crops(size=(32, 32))
    adv = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    both = evaluate_editing(editor, x, adv)
    sizes = [evaluate_defense(editor, x, adv, resolution=r) for r in (16, 32)]
    assert both.distortion.shape == (2, 2)
    assert torch.equal(both.distortion, torch.cat([m.distortion for m in sizes], dim=1))
    assert both.dsr_cmua == pytest.approx(np.mean([m.dsr_cmua for m in sizes]))


def test_focus_steps_only_on_sizes_still_unsolved(monkeypatch: pytest.MonkeyPatch) -> None:
    editor = ConvEditor(16, (32, 64))

    def size_16_solved(self: _Run, x_in: torch.Tensor, idx: torch.Tensor,
                       *args: object) -> tuple[torch.Tensor, torch.Tensor]:
        editor.sizes.append(0)  # marks a check in the record of sizes
        return torch.tensor([[True, False]]).expand(len(idx), 2), torch.full((len(idx),), 0.5)

    monkeypatch.setattr(_Run, "_succeeds", size_16_solved)
    cfg = GraspConfig(psnr_budget=40.0, scale_sampling="focus", check_every=1, steps=8,
                      lambda_ssim=0.0, lambda_lf=0.0)
    grasp(crops(size=(32, 32)), [editor], cfg)
    # after the first check, every gradient step runs at 32 (the result then checks both)
    after = [s for s in editor.sizes[editor.sizes.index(0):-2] if s]
    assert len(after) == 7 and set(after) == {32}


def test_a_delivered_perturbation_spends_the_budget_where_it_lands() -> None:
    from grasp_guard.faces.regions import round_trip_matrix

    x = crops(size=(32, 32))
    m = torch.from_numpy(round_trip_matrix(32, 90)).expand(2, 2, 32, 32).contiguous()
    cfg = GraspConfig(psnr_budget=38.0, **UNREACHED)
    result = grasp(x, [tiny_stargan()], cfg, delivery=m)
    # the statistics are of the delivered crop, which sits on the budget ...
    assert (result.psnr - 38.0).abs().max() <= 0.3
    # ... while the pasted δ is larger: the round trip takes part of it away
    pasted = 10 * torch.log10(1 / (result.images - x).flatten(1).square().mean(dim=1))
    assert (pasted < result.psnr - 0.3).all()
    with pytest.raises(ValueError, match="delivery"):
        grasp(x, [tiny_stargan()], cfg, delivery=m[:, 0])


def test_a_mirrored_padding_is_seen_but_not_counted_in_the_budget() -> None:
    from grasp_guard.faces.regions import round_trip_matrix

    x = crops(size=(32, 32))
    weight = torch.ones_like(x[:, :1])
    weight[..., :8] = 0.0  # the crop starts 8 px left of the photo, mirrored there
    eye = torch.eye(32)
    columns = torch.from_numpy(round_trip_matrix(32, 32, start=-8, length=100))
    m = torch.stack([eye, columns]).expand(2, 2, 32, 32).contiguous()
    cfg = GraspConfig(psnr_budget=38.0, **UNREACHED)
    result = grasp(x, [tiny_stargan()], cfg, weight=weight, delivery=m)
    delta = result.images - x
    assert delta[..., :8].abs().max() == 0  # nothing pasted past the border
    inside = delta[..., 8:].double().square().flatten(1).mean(dim=1)
    torch.testing.assert_close(result.psnr, -10 * torch.log10(inside), atol=1e-6, rtol=0)
    assert (result.psnr - 38.0).abs().max() <= 0.3


def test_a_run_that_never_stops_returns_its_best_checked_perturbation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[torch.Tensor] = []
    closeness = [0.2, 0.9, 0.1, 0.3]

    def scored(self: _Run, x_in: torch.Tensor, idx: torch.Tensor,
               *args: object) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(self.delta[idx].clone())
        k = len(seen) - 1
        return (torch.zeros(len(idx), len(self.targets), dtype=torch.bool),
                torch.full((len(idx),), closeness[k], dtype=torch.float64))

    monkeypatch.setattr(_Run, "_succeeds", scored)
    x = crops(size=(32, 32))
    cfg = GraspConfig(psnr_budget=40.0, check_every=1, steps=4)
    result = grasp(x, [tiny_stargan()], cfg)
    assert len(seen) == 4 and not torch.equal(seen[1], seen[3])
    # the second check came closest to disrupting: its δ is returned, not the last step's
    assert torch.allclose(result.images, (x + seen[1]).mul(255).round().div(255), atol=1e-6)
    assert not result.stopped.any()


def test_overlapping_crops_are_optimised_with_what_their_neighbours_paste() -> None:
    # crop 0 may not change its left half (a neighbour owns it), which carries crop 1's δ
    x = crops(size=(32, 32))
    weight = torch.ones_like(x[:, :1])
    weight[0, ..., :16] = 0.0
    eye = torch.eye(32)
    left = torch.diag((torch.arange(32) < 16).float())
    cfg = GraspConfig(psnr_budget=38.0, **UNREACHED)
    editor = tiny_stargan()
    alone = grasp(x, [editor], cfg, weight=weight)
    joint = grasp(x, [editor], cfg, weight=weight, crosstalk=[(0, 1, torch.stack([eye, left]))])
    # crop 1's δ is pulled by crop 0's edits too ...
    assert (joint.images[1] - alone.images[1]).abs().max() > 1.5 / 255
    # ... and crop 0 is judged on what it re-cuts: its own δ and its neighbour's left half
    delta = joint.images - x
    seen = (x[:1] + delta[:1] + delta[1:] @ left).clamp(0, 1).mul(255).round().div(255)
    judged = evaluate_defense(editor, x[:1], seen, resolution=32).distortion.mean()
    assert float(judged) == pytest.approx(float(joint.distortion[0]), rel=0.1)
    own_only = evaluate_defense(editor, x[:1], joint.images[:1], resolution=32).distortion.mean()
    assert abs(float(own_only) - float(joint.distortion[0])) > 0.1 * float(joint.distortion[0])
    with pytest.raises(ValueError, match="crosstalk"):
        grasp(x, [editor], cfg, crosstalk=[(0, 0, torch.stack([eye, eye]))])


def test_a_fixed_context_is_part_of_what_the_loop_sees_not_of_what_it_returns() -> None:
    # crop 0's left half carries what an earlier stage pasted there (another crop size)
    x = crops(size=(32, 32))
    context = torch.zeros_like(x)
    context[0, :, :, :16] = torch.randint(-6, 7, (3, 32, 16), generator=torch.Generator().manual_seed(0)) / 255
    context[0] = (x[0] + context[0]).clamp(0, 1) - x[0]
    cfg = GraspConfig(psnr_budget=38.0, **UNREACHED)
    editor = tiny_stargan()
    alone = grasp(x, [editor], cfg)
    seeing = grasp(x, [editor], cfg, context=context)
    assert (seeing.images[0] - alone.images[0]).abs().max() > 1.5 / 255  # it steers crop 0
    assert torch.equal(seeing.images[1], alone.images[1])  # and no other
    # the returned crop is its own δ only; its statistics are of the crop as re-cut
    own = seeing.images[:1] - x[:1]
    assert float(own.square().mean()) <= 10 ** (-38.0 / 10) * 1.02
    recut = (x[:1] + own + context[:1]).clamp(0, 1).mul(255).round().div(255)
    judged = evaluate_defense(editor, x[:1], recut, resolution=32).distortion.mean()
    assert float(judged) == pytest.approx(float(seeing.distortion[0]), rel=0.1)
    with pytest.raises(ValueError, match="context"):
        grasp(x, [editor], cfg, context=context[:1])


def test_a_warm_start_is_where_the_loop_goes_on_from() -> None:
    x = crops(size=(32, 32))
    gen = torch.Generator().manual_seed(1)
    init = (x + torch.randint(-4, 5, x.shape, generator=gen) / 255).clamp(0, 1) - x
    cfg = GraspConfig(psnr_budget=None, success_threshold=1e6, steps=1, alpha=0.1 / 255)
    editor = tiny_stargan()
    started = grasp(x, [editor], cfg, init=init).images
    fresh = grasp(x, [editor], cfg).images
    expected = (x + init).mul(255).round().div(255)
    assert float((started - expected).abs().max()) <= 1.01 / 255  # one 0.1/255 step on
    assert float((fresh - expected).abs().max()) > 2 / 255
    with pytest.raises(ValueError, match="init"):
        grasp(x, [editor], cfg, init=init[:1])


@pytest.mark.parametrize(("already_done", "early_stop"), [(False, True), (True, True),
                                                         (True, False)])
def test_a_warm_start_is_judged_before_the_first_step(
        monkeypatch: pytest.MonkeyPatch, already_done: bool, early_stop: bool) -> None:
    # the start scores best of every check (or is done already): the run ends where it began
    calls: list[int] = []

    def scored(self: _Run, x_in: torch.Tensor, idx: torch.Tensor,
               *args: object) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(len(calls))
        ok = torch.full((len(idx), len(self.targets)), already_done)
        closeness = torch.full((len(idx),), 0.9 if len(calls) == 1 else 0.1, dtype=torch.float64)
        return ok, closeness

    monkeypatch.setattr(_Run, "_succeeds", scored)
    x = crops(size=(32, 32))
    gen = torch.Generator().manual_seed(2)
    init = (x + torch.randint(-4, 5, x.shape, generator=gen) / 255).clamp(0, 1) - x
    # without the early stop, the checks run for the SSIM steering (a target)
    cfg = GraspConfig(psnr_budget=None, check_every=1, steps=3, alpha=1 / 255,
                      early_stop=early_stop, ssim_target=None if early_stop else 0.5)
    result = grasp(x, [tiny_stargan()], cfg, init=init)
    expected = (x + init).mul(255).round().div(255)
    assert torch.allclose(result.images, expected, atol=1e-6)
    assert result.iterations.tolist() == ([0, 0] if already_done and early_stop else [3, 3])


def test_overlapping_crops_stop_together_and_keep_one_check_together(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[torch.Tensor] = []
    closeness = torch.tensor([[0.9, 0.1], [0.1, 0.5], [0.2, 0.6], [0.3, 0.2]], dtype=torch.float64)
    first_done = torch.tensor([True, False])

    def scored(self: _Run, x_in: torch.Tensor, idx: torch.Tensor,
               *args: object) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(self.delta.clone())
        k = min(len(seen) - 1, 3)
        ok = first_done[idx, None].expand(len(idx), len(self.targets)).clone()
        return ok, closeness[k, idx]

    monkeypatch.setattr(_Run, "_succeeds", scored)
    x = crops(size=(32, 32))
    eye = torch.eye(32)
    cfg = GraspConfig(psnr_budget=40.0, check_every=1, steps=4, ssim_target=None)
    apart = grasp(x, [tiny_stargan()], cfg)
    assert apart.stopped.tolist() == [True, False]  # crop 0 is done at the first check
    seen.clear()
    first_done[0] = False
    coupled = grasp(x, [tiny_stargan()], cfg, crosstalk=[(0, 1, torch.stack([eye, eye]))])
    # alone, crop 0 would keep the first check and crop 1 the third; together the first
    expected = (x + seen[0]).mul(255).round().div(255)
    assert not coupled.stopped.any()
    assert torch.allclose(coupled.images, expected, atol=1e-6)
    seen.clear()
    first_done[0] = True
    held = grasp(x, [tiny_stargan()], cfg, crosstalk=[(0, 1, torch.stack([eye, eye]))])
    assert not held.stopped.any()  # crop 0 is done, but its neighbour is not


class SizeChannelEditor(ConvEditor):
    """Sees colour channel 0 when run at its smallest size and channel 1 at any other."""

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        channel = 0 if x.shape[-1] == min(self.info.resolutions) else 1
        return self.to_model_space(x)[:, channel:channel + 1].expand(-1, 3, -1, -1)


def test_shrink_weighting_gives_a_large_face_s_small_size_the_steps() -> None:
    x = crops(2, size=(32, 32))
    cfg = GraspConfig(psnr_budget=40.0, early_stop=False, steps=10, lambda_ssim=0.0,
                      lambda_lf=0.0, step_rule="l2", objective="mean")

    def small_size_share(power: float) -> float:
        delta = grasp(x, [SizeChannelEditor(32, (8,))], cfg.replace(shrink_weighting=power)).images - x
        energy = delta.pow(2).sum(dim=(0, 2, 3))
        return float(energy[0] / (energy[0] + energy[1]))

    # the 8-px view (channel 0) is the crop shrunk 4×: unweighed it takes a small share of
    # the steps, weighed 4× (power 1) more, weighed 16× (power 2) most
    shares = [small_size_share(p) for p in (0.0, 1.0, 2.0)]
    assert shares[0] < 0.1 and shares[2] > 0.5
    assert shares[0] < shares[1] < shares[2]


def test_solved_weight_moves_the_steps_off_a_size_already_disrupted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def small_size_solved(self: _Run, x_in: torch.Tensor, idx: torch.Tensor,
                          *args: object) -> tuple[torch.Tensor, torch.Tensor]:
        ok = torch.zeros((len(idx), len(self.targets)), dtype=torch.bool)
        ok[:, 0] = True  # the 8-px size, and only it, is disrupted at every check
        return ok, torch.zeros(len(idx), dtype=torch.float64)

    monkeypatch.setattr(_Run, "_succeeds", small_size_solved)
    x = crops(2, size=(32, 32))
    cfg = GraspConfig(psnr_budget=40.0, steps=10, check_every=1, lambda_ssim=0.0,
                      lambda_lf=0.0, step_rule="l2", objective="mean", shrink_weighting=2.0)

    def small_size_share(solved_weight: float) -> float:
        run = cfg.replace(solved_weight=solved_weight)
        delta = grasp(x, [SizeChannelEditor(32, (8,))], run).images - x
        energy = delta.pow(2).sum(dim=(0, 2, 3))
        return float(energy[0] / (energy[0] + energy[1]))

    # weighed 16x, the 8-px size takes most of the steps; once disrupted, at a tenth of
    # that it yields them to the size still missing
    assert small_size_share(1.0) > 0.5
    assert small_size_share(0.1) < 0.5 * small_size_share(1.0)
    with pytest.raises(ConfigError, match="solved_weight"):
        cfg.replace(solved_weight=0.0)


def test_size_balance_gives_every_size_a_pull_of_one_strength() -> None:
    x = crops(2, size=(32, 32))
    cfg = GraspConfig(psnr_budget=40.0, early_stop=False, steps=10, lambda_ssim=0.0,
                      lambda_lf=0.0, step_rule="l2", objective="mean")

    def small_size_share(**changes: object) -> float:
        delta = grasp(x, [SizeChannelEditor(32, (8,))], cfg.replace(**changes)).images - x
        energy = delta.pow(2).sum(dim=(0, 2, 3))
        return float(energy[0] / (energy[0] + energy[1]))

    # by their losses the 8-px view (channel 0, the crop shrunk 4x) takes a small share of
    # the steps; by unit gradients the two sizes take even shares, and a weight then says
    # how much more one gets
    assert small_size_share() < 0.1
    assert 0.35 < small_size_share(size_balance=True) < 0.65
    assert small_size_share(size_balance=True, shrink_weighting=1.0) > 0.8
    with pytest.raises(ConfigError, match="size_balance"):
        cfg.replace(size_balance=True, feature_weight=0.1)
