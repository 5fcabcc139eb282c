"""The batched GRASP loop on tiny seeded editors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from grasp_guard.defense import grasp as grasp_module
from grasp_guard.defense.config import GraspConfig
from grasp_guard.defense.grasp import grasp
from grasp_guard.defense.metrics import batch_ssim, evaluate_defense
from grasp_guard.models.editor import Editor, EditorInfo
from grasp_guard.models.stargan import CELEBA_ATTRIBUTES, Generator, StarGANEditor

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
EPS = 6 / 255
PLAIN = GraspConfig(eps=EPS, alpha=1 / 255, steps=6, early_stop=False, psnr_floor=None,
                    ssim_floor=None, psnr_budget=None, ssim_target=None, step_rule="sign",
                    objective="mean", masked_loss=False)


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


def tiny_stargan(resolution: int = 32, seed: int = 0, c_dim: int = 5) -> StarGANEditor:
    torch.manual_seed(seed)
    attributes = CELEBA_ATTRIBUTES if c_dim == 5 else tuple(f"a{i}" for i in range(c_dim))
    gen = Generator(conv_dim=8, c_dim=c_dim, repeat_num=1)
    info = EditorInfo("tiny", resolution, attributes, seeded=True)
    return StarGANEditor(gen, info).eval().freeze()


def crops(n: int = 2, size: tuple[int, int] = (24, 28)) -> torch.Tensor:
    """Quantised crops of real images, at a size no editor uses (the resize path)."""
    images = [data.astronaut(), data.chelsea(), data.coffee()][:n]
    x = torch.cat([F.interpolate(torch.from_numpy(np.ascontiguousarray(i)).permute(2, 0, 1)[None]
                                 .float() / 255, size=size, mode="area") for i in images])
    return torch.round(x * 255) / 255


class GainEditor(Editor):
    """G(x, c) = c·(2x − 1) + 1: condition c is a gain; gain 0 can never be disrupted."""

    def __init__(self, resolution: int = 16) -> None:
        super().__init__()
        self.info = EditorInfo("gain", resolution, ("gain",))
        self.batch_sizes: list[int] = []

    def conditions(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.tensor([[1.0]])

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(x.shape[0])
        return c.view(-1, 1, 1, 1) * self.to_model_space(x) + 1.0


def test_grasp_disrupts_within_budget_and_quantises(device: torch.device) -> None:
    editor = tiny_stargan().to(device)
    x = crops().to(device)
    r = grasp(x, [editor], PLAIN)
    assert r.images.shape == x.shape
    assert (r.images - x).abs().max().item() <= EPS + 1e-6
    scaled = r.images * 255
    torch.testing.assert_close(scaled, scaled.round(), rtol=0, atol=1e-4)
    assert r.iterations.tolist() == [6, 6] and not r.stopped.any()
    m = evaluate_defense(editor, x, r.images)
    torch.testing.assert_close(m.distortion.mean(dim=1).cpu(), r.distortion)
    one_step = grasp(x, [editor], PLAIN.replace(steps=1))
    assert (r.distortion > 1.5 * one_step.distortion).all()
    assert (r.psnr > 30).all() and (r.ssim > 0.9).all()


def test_grasp_is_deterministic_with_a_seed() -> None:
    editor, x = tiny_stargan(), crops()
    a, b = grasp(x, [editor], PLAIN), grasp(x, [editor], PLAIN)
    assert torch.equal(a.images, b.images)
    c = grasp(x, [editor], PLAIN.replace(seed=1))
    assert not torch.equal(a.images, c.images)


def test_early_stop_stops_samples_independently() -> None:
    editor = GainEditor()
    x = torch.full((2, 3, 16, 16), 0.5)
    x[1] = crops(1, (16, 16))[0]
    cond = torch.tensor([[[50.0]], [[0.0]]])  # sample 0 is easy, sample 1 impossible
    # a flat grey sample can never hold an SSIM target at this PSNR: none here
    cfg = GraspConfig(eps=4 / 255, alpha=1 / 255, steps=12, check_every=3, psnr_floor=None,
                      ssim_floor=None, ssim_target=None)
    r = grasp(x, [editor], cfg, conditions=[cond])
    assert r.iterations.tolist() == [3, 12]
    assert r.stopped.tolist() == [True, False]
    assert r.dsr.tolist() == [1.0, 0.0]
    # once sample 0 stops it leaves the forward batch (the rest are clean, check and final passes)
    assert editor.batch_sizes[1:4] == [2, 2, 2] and editor.batch_sizes[5:7] == [1, 1]
    for i in range(2):
        alone = grasp(x[i:i + 1], [editor], cfg, conditions=[cond[i:i + 1]])
        assert torch.equal(alone.images[0], r.images[i])
        assert alone.iterations.item() == r.iterations[i].item()


def test_quality_floor_blocks_the_stop_and_steers_towards_quality() -> None:
    editor, x = tiny_stargan(), crops()
    cfg = GraspConfig(eps=8 / 255, alpha=1 / 255, steps=6, check_every=2, success_threshold=1e-9,
                      psnr_floor=None, ssim_floor=None, psnr_budget=None, step_rule="sign",
                      objective="mean", masked_loss=False, ssim_target=None)
    assert grasp(x, [editor], cfg).iterations.tolist() == [2, 2]
    floored = grasp(x, [editor], cfg.replace(psnr_floor=99.0))
    assert floored.iterations.tolist() == [6, 6] and not floored.stopped.any()
    free = grasp(x, [editor], cfg.replace(early_stop=False))
    assert (floored.psnr > free.psnr + 1.0).all()


def test_transform_is_applied_before_the_resize() -> None:
    editor, x = tiny_stargan(), crops()
    seen: list[tuple[int, ...]] = []

    def blur(t: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(t.shape))
        return F.avg_pool2d(t, 3, stride=1, padding=1, count_include_pad=False)

    r = grasp(x, [editor], PLAIN, transform=blur)
    # x' and the clean crops go through one draw together
    assert seen == [(2 * x.shape[0], *x.shape[1:])] * PLAIN.steps
    assert not torch.equal(r.images, grasp(x, [editor], PLAIN).images)
    seen.clear()
    grasp(x, [editor], PLAIN.replace(early_stop=True, check_every=3), transform=blur)
    assert len(seen) == PLAIN.steps + 2  # plus one transformed forward per check


def test_the_transformed_loss_is_measured_against_the_transformed_clean_image() -> None:
    # Inverting the image changes every edit far past the threshold. Measured against G(x)
    # the hinge would be saturated from the start and δ would never move; measured against
    # G(T(x)), as a site's copy is, there is everything still to do.
    editor, x = tiny_stargan(), crops()
    cfg = PLAIN.replace(objective="hinge", lambda_ssim=0.0, lambda_lf=0.0)
    once = grasp(x, [editor], cfg.replace(steps=1), transform=lambda t: 1.0 - t)
    more = grasp(x, [editor], cfg, transform=lambda t: 1.0 - t)
    assert not torch.equal(once.images, more.images)


def test_several_editors_and_per_image_conditions() -> None:
    a, b = tiny_stargan(32, seed=0), tiny_stargan(16, seed=1, c_dim=3)
    x = crops()
    cond_b = torch.eye(3)[:2]  # two of b's edits for every image
    r = grasp(x, [a, b], PLAIN, conditions=[None, cond_b])
    ma, mb = evaluate_defense(a, x, r.images), evaluate_defense(b, x, r.images, cond_b)
    expected = torch.cat([ma.distortion, mb.distortion], dim=1).mean(dim=1)
    torch.testing.assert_close(r.distortion, expected)


def test_editor_mode_and_flags_are_restored() -> None:
    editor = tiny_stargan()
    editor.train().requires_grad_(True)
    grasp(crops(1), [editor], PLAIN.replace(steps=1))
    assert editor.training
    assert all(p.requires_grad for p in editor.parameters())
    assert all(p.grad is None for p in editor.parameters())


@pytest.mark.parametrize(
    "overrides",
    [
        {"step_rule": "l2"},
        {"step_rule": "adam"},
        {"init": "zero", "lf_operator": "dwt"},
        {"lf_operator": "dct", "masked_loss": True},
        {"smoothing": "after", "smooth_kernel": 5},
        {"smoothing": "before", "cross_projection": True, "normalize": False},
    ],
)
def test_every_variant_runs_within_budget(overrides: dict[str, object]) -> None:
    editor, x = tiny_stargan(), crops(1)
    r = grasp(x, [editor], PLAIN.replace(steps=3, **overrides))
    assert (r.images - x).abs().max().item() <= EPS + 1e-6
    assert torch.isfinite(r.distortion).all()


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.full((1, 3, 16, 16), 1.5), r"\[0, 1\]"),
        (torch.rand(1, 3, 8, 16), "at least 11"),
        (torch.rand(1, 1, 16, 16), r"\(N, 3, H, W\)"),
        (torch.rand(3, 16, 16), r"\(N, 3, H, W\)"),
    ],
)
def test_bad_inputs_are_refused(x: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        grasp(x, [tiny_stargan()], PLAIN)


def test_bad_editor_lists_are_refused() -> None:
    x = crops(1)
    with pytest.raises(ValueError, match="editor"):
        grasp(x, [], PLAIN)
    with pytest.raises(ValueError, match="one entry per editor"):
        grasp(x, [tiny_stargan()], PLAIN, conditions=[None, None])


def test_psnr_budget_bounds_every_sample() -> None:
    editor, x = tiny_stargan(), crops()
    cfg = PLAIN.replace(step_rule="l2", eps=16 / 255, alpha=2 / 255, psnr_budget=38.0)
    result = grasp(x, [editor], cfg)
    # the ball holds before rounding; 8-bit rounding may cost a few tenths of a dB
    assert (result.psnr > 37.5).all() and (result.psnr < 39.0).all()
    looser = grasp(x, [editor], cfg.with_budget(cfg.budget * 2))
    assert (looser.psnr < result.psnr - 4).all()


def test_hinge_objective_stops_pushing_disrupted_pairs() -> None:
    editor, x = tiny_stargan(), crops()
    reached = PLAIN.replace(objective="hinge", success_threshold=1e-9, margin=1.0, init="uniform")
    result = grasp(x, [editor], reached)
    pushed = grasp(x, [editor], reached.replace(objective="mean"))
    # every pair is past a 1e-9 threshold from the random start: the hinge has no gradient
    # left (the sign step of a zero gradient is zero), the mean keeps pushing
    assert (result.distortion < pushed.distortion).all()


def test_weight_confines_the_perturbation() -> None:
    editor, x = tiny_stargan(), crops()
    weight = torch.zeros(x.shape[0], 1, *x.shape[2:])
    weight[..., 8:-8, 8:-8] = 1.0
    result = grasp(x, [editor], PLAIN, weight=weight)
    changed = (result.images - x).abs().sum(dim=1, keepdim=True) > 1e-6
    assert changed[weight == 0].sum() == 0 and changed[weight == 1].any()
    with pytest.raises(ValueError, match="weight"):
        grasp(x, [editor], PLAIN, weight=weight[:, :, 1:])


def test_each_samples_grid_reaches_the_transform_with_it() -> None:
    editor, x = tiny_stargan(), crops(2)
    grid = torch.tensor([[3, 5, 0], [-1, 12, 1]])
    seen: list[torch.Tensor] = []

    def site(batch: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        seen.append(grid)
        return batch

    grasp(x, [editor], PLAIN.replace(steps=2, input_diversity=0.1), transform=site, grid=grid)
    assert seen and all(torch.equal(g, torch.cat([grid, grid])) for g in seen)
    with pytest.raises(ValueError, match="grid"):
        grasp(x, [editor], PLAIN, grid=grid)
    with pytest.raises(ValueError, match="grid"):
        grasp(x, [editor], PLAIN, transform=site, grid=grid[:1])


class ChannelEditor(Editor):
    """G(x) = gain · x_k in every channel: sees one colour channel only, at a gain."""

    def __init__(self, channel: int, gain: float) -> None:
        super().__init__()
        self.info = EditorInfo(f"channel{channel}", 16, ("edit",))
        self.channel, self.gain = channel, gain

    def conditions(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.tensor([[1.0]])

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        seen = self.to_model_space(x)[:, self.channel:self.channel + 1]
        return (self.gain * seen).expand(-1, 3, -1, -1)


def test_log_objective_pulls_the_pair_furthest_from_disrupted() -> None:
    x = crops(2, size=(16, 16))
    editors = [ChannelEditor(0, 1.0), ChannelEditor(1, 0.1)]
    cfg = PLAIN.replace(step_rule="l2", steps=10, lambda_ssim=0.0, lambda_lf=0.0)

    def share_of_weak_channel(objective: str) -> float:
        delta = grasp(x, editors, cfg.replace(objective=objective)).images - x
        energy = delta.pow(2).sum(dim=(0, 2, 3))
        return float(energy[1] / energy[0])

    # the mean follows the strong editor (its distance is 100× the weak one's); the log
    # weighs each by 1/d, so the weak editor's channel moves about as much
    assert share_of_weak_channel("mean") < 0.3
    assert share_of_weak_channel("log") > 0.6


def test_log_objective_is_the_means_twin_where_a_crop_has_one_pair() -> None:
    # one editor, one edit, one size: 1/d scales each sample's gradient, which the per-sample
    # normalisation takes out again
    x = crops(2, size=(16, 16))
    cfg = PLAIN.replace(step_rule="adam", lambda_ssim=0.1, lambda_lf=0.1)
    mean = grasp(x, [GainEditor()], cfg).images
    log = grasp(x, [GainEditor()], cfg.replace(objective="log")).images
    assert torch.allclose(mean, log, atol=1e-6)


def test_bfloat16_precision_runs_the_gradient_passes_only_in_bfloat16() -> None:
    editor, x = tiny_stargan(), crops(1)
    dtypes: list[tuple[torch.dtype, bool]] = []
    conv = next(m for m in editor.modules() if isinstance(m, torch.nn.Conv2d))
    handle = conv.register_forward_hook(
        lambda m, args, out: dtypes.append((out.dtype, torch.is_grad_enabled())))
    cfg = PLAIN.replace(steps=4, early_stop=True, check_every=2, margin=1e6, precision="bfloat16")
    try:
        r = grasp(x, [editor], cfg)
    finally:
        handle.remove()
    stepped = {dtype for dtype, grad in dtypes if grad}
    judged = {dtype for dtype, grad in dtypes if not grad}
    assert stepped == {torch.bfloat16}
    # the clean sides of the steps run in bf16 without gradients; the checks and the result
    # (the last forwards of the run) are float32
    assert torch.float32 in judged and dtypes[-1][0] == torch.float32
    judge = evaluate_defense(editor, x, r.images)  # float32 throughout
    torch.testing.assert_close(judge.distortion.mean(dim=1), r.distortion, rtol=0, atol=0)


def test_bfloat16_steps_land_where_float32_steps_do() -> None:
    editor, x = tiny_stargan(), crops(2)
    cfg = PLAIN.replace(steps=8, psnr_budget=36.0, step_rule="l2")
    full = grasp(x, [editor], cfg)
    half = grasp(x, [editor], cfg.replace(precision="bfloat16"))
    assert torch.allclose(half.psnr, full.psnr, atol=0.2)
    assert torch.allclose(half.distortion, full.distortion, rtol=0.3)


@pytest.mark.parametrize(("precision", "native", "expected"), [
    ("float32", True, None), ("bfloat16", False, torch.bfloat16),
    ("auto", True, torch.bfloat16), ("auto", False, None)])
def test_auto_precision_takes_bfloat16_only_where_the_device_has_it(
        monkeypatch: pytest.MonkeyPatch, precision: str, native: bool,
        expected: torch.dtype | None) -> None:
    monkeypatch.setattr(grasp_module, "_native_bf16", lambda device: native)
    assert grasp_module._gradient_dtype(precision, torch.device("cpu")) is expected


def test_the_budget_is_spent_on_the_pixels_that_exist() -> None:
    """A crop cut past the image border: its padding (weight 0) is not the photo's, so the
    PSNR over the pixels that are must meet the budget, not the crop's diluted mean."""
    editor, x = tiny_stargan(), crops(2)
    weight = torch.ones_like(x[:, :1])
    weight[..., :, : x.shape[-1] // 2] = 0.0  # half of each crop lies past the border
    r = grasp(x, [editor], PLAIN.replace(psnr_budget=36.0, step_rule="l2", eps=1.0, alpha=0.05),
              weight=weight)
    inside = (r.images - x)[..., x.shape[-1] // 2:]
    psnr_inside = -10 * torch.log10(inside.double().square().flatten(1).mean(dim=1))
    # within 0.4 dB (a saturated pixel clamps its δ); the diluted budget lands 3 dB above
    assert ((psnr_inside - 36.0).abs() < 0.4).all()
    torch.testing.assert_close(r.psnr, psnr_inside, atol=1e-6, rtol=0)
    # so is SSIM: the unchanged padding does not lift it
    half = x.shape[-1] // 2
    ssim_inside = batch_ssim(r.images[..., half:], x[..., half:])
    assert (r.ssim < batch_ssim(r.images, x)).all()
    torch.testing.assert_close(r.ssim, ssim_inside, atol=2e-3, rtol=0)
