"""Input diversity: the random zoom-and-shift view and its use by the GRASP loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_defense_grasp import PLAIN, crops, tiny_stargan

from grasp_guard.defense import diversity
from grasp_guard.defense.config import GraspConfig
from grasp_guard.defense.grasp import Transform, grasp
from grasp_guard.defense.metrics import editor_input
from grasp_guard.defense.transforms import SitePipeline, SiteSpec, build_site_pipeline
from grasp_guard.errors import ConfigError

DIVERSE = PLAIN.replace(input_diversity=0.2, diversity_prob=1.0)


def test_identity_view_leaves_the_image_as_it_is() -> None:
    x = torch.rand(2, 3, 16, 20)
    assert torch.allclose(diversity.RescaleShift(1.0, 0.0, 0.0)(x), x, atol=1e-6)


def test_a_shift_moves_the_content_and_mirrors_past_the_border() -> None:
    x = torch.rand(1, 3, 8, 8) * 0.5 + 0.5
    # half a side to the right = 2 px of 8
    moved = diversity.RescaleShift(1.0, 0.5, 0.0)(x)
    assert torch.allclose(moved[..., 2:], x[..., :-2], atol=1e-6)
    # what comes in at the left is the image's own left edge, mirrored, not black
    assert torch.allclose(moved[..., :2], x[..., :2].flip(-1), atol=1e-6)


def test_the_checks_framings_are_whole_pixels_and_small_zooms() -> None:
    x = torch.rand(1, 3, 64, 64)
    one, three = diversity.framings(64)[:2]
    assert torch.allclose(one(x)[..., 2:, 1:], x[..., :-2, :-1], atol=1e-5)  # 1 px right, 2 down
    assert torch.allclose(three(x)[..., 1:, 3:], x[..., :-1, :-3], atol=1e-5)
    assert sorted(f.scale for f in diversity.framings(64)) == [0.95, 1.0, 1.0, 1.05]


def test_zoom_in_enlarges_the_centre() -> None:
    x = torch.zeros(1, 1, 32, 32)
    x[..., 12:20, 12:20] = 1.0
    zoomed = diversity.RescaleShift(1.25, 0.0, 0.0)(x)
    assert float(zoomed.sum()) == pytest.approx(float(x.sum()) * 1.25**2, rel=0.1)


@pytest.mark.parametrize("scale", [0.9, 1.1])
def test_a_zoom_resizes_as_pillow_does(scale: float) -> None:
    # an attacker's resizer antialiases a shrink; point sampling would alias the finest
    # detail, which is where a perturbation lives
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    p = diversity.mirror_margin(64, 64)
    big = np.pad(img, ((p, p), (p, p), (0, 0)), mode="reflect")
    side = round(big.shape[0] * scale)
    ref = np.array(Image.fromarray(big).resize((side, side), Image.BILINEAR))
    top = (side - 64) // 2
    expected = torch.from_numpy(ref[top:top + 64, top:top + 64]).permute(2, 0, 1)[None] / 255
    assert (diversity.RescaleShift(scale, 0.0, 0.0)(x) - expected).abs().max() <= 1.5 / 255


def test_a_zoomed_view_moves_by_whole_pixels() -> None:
    x = torch.rand(1, 3, 40, 40)
    still = diversity.RescaleShift(0.9, 0.0, 0.0)(x)
    moved = diversity.RescaleShift(0.9, diversity.pixels(3, 40), diversity.pixels(-2, 40))(x)
    assert torch.equal(moved[..., :-2, 3:], still[..., 2:, :-3])


def test_the_view_is_differentiable() -> None:
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(diversity.RescaleShift(0.9, 0.1, -0.05), (x,))


def test_draws_are_fixed_by_the_seed_and_stay_in_range() -> None:
    def views(seed: int) -> list[diversity.RescaleShift | None]:
        gen = torch.Generator().manual_seed(seed)
        return [diversity.draw(gen, 0.2, 0.5, (40, 60)) for _ in range(200)]

    a = views(3)
    assert a == views(3) and a != views(4)
    drawn = [v for v in a if v is not None]
    assert 70 < len(drawn) < 130  # about half the steps
    assert all(0.8 <= v.scale <= 1.2 and abs(v.dx) <= 0.2 and abs(v.dy) <= 0.2 for v in drawn)
    # about half the views are whole-pixel shifts, up to 0.2 half-sides: 6 px of 60, 4 of 40
    whole = [v for v in drawn if v.scale == 1.0]
    assert 0.3 < len(whole) / len(drawn) < 0.7
    assert {round(v.dx * 30) for v in whole} == set(range(-6, 7))
    assert {round(v.dy * 20) for v in whole} == set(range(-4, 5))
    assert all(abs(v.dx * 30 - round(v.dx * 30)) < 1e-9 for v in whole)


def test_diversity_changes_what_the_editors_see_and_is_reproducible() -> None:
    editor, x = tiny_stargan(), crops(1)
    cfg = DIVERSE.replace(steps=3)
    inputs: list[torch.Tensor] = []
    handle = editor.register_forward_pre_hook(lambda m, args: inputs.append(args[0].detach()))
    try:
        plain = grasp(x, [editor], cfg.replace(input_diversity=0.0))
        plain_inputs = list(inputs)
        inputs.clear()
        diverse = grasp(x, [editor], cfg)
        diverse_inputs = list(inputs)
    finally:
        handle.remove()
    # each step also edits the clean crops through the same view: more forwards, other inputs
    assert len(diverse_inputs) > len(plain_inputs)
    assert not torch.equal(diverse_inputs[-1], plain_inputs[-1])
    assert not torch.equal(diverse.images, plain.images)
    assert torch.equal(diverse.images, grasp(x, [editor], cfg).images)
    assert not torch.equal(diverse.images, grasp(x, [editor], cfg.replace(seed=1)).images)
    assert (diverse.images - x).abs().max().item() <= PLAIN.eps + 1e-6


def test_the_early_stop_judges_the_image_as_it_is() -> None:
    editor, x = tiny_stargan(), crops(1)
    calls: list[int] = []
    handle = editor.register_forward_pre_hook(lambda m, args: calls.append(1))
    try:
        # no SSIM target either: its steering runs the checks too
        unsteered = DIVERSE.replace(ssim_target=None)
        grasp(x, [editor], unsteered)
        without_checks = len(calls)
        calls.clear()
        # a margin no face reaches: two checks, nobody stops
        grasp(x, [editor], unsteered.replace(early_stop=True, check_every=3, margin=1e6))
    finally:
        handle.remove()
    assert len(calls) == without_checks + 2  # one plain forward per check, no view


def _editor_inputs(x: torch.Tensor, cfg: GraspConfig,
                   transform: Transform | None = None) -> tuple[int, list[torch.Tensor]]:
    """How many forwards a run without framing checks makes, and every editor input of the
    same run with them."""
    editor = tiny_stargan()
    seen: list[torch.Tensor] = []
    handle = editor.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    try:
        grasp(x, [editor], cfg, transform=transform)
        plain = len(seen)
        seen.clear()
        grasp(x, [editor], cfg.replace(check_framings=True), transform=transform)
    finally:
        handle.remove()
    return plain, seen


def test_framing_checks_judge_each_framing_against_the_clean_crop_framed_so() -> None:
    x = crops(1)
    cfg = PLAIN.replace(ssim_target=None, early_stop=True, check_every=3, steps=3, margin=1e6)
    plain, seen = _editor_inputs(x, cfg)
    # one check: per framing, the clean crop so framed and the protected one
    framings = diversity.framings(x.shape[-1])
    assert len(seen) == plain + 2 * len(framings)
    for framing in framings:
        clean = editor_input(framing(x), tiny_stargan().info.resolution)
        assert any(torch.allclose(s[:1], clean, atol=1e-5) for s in seen)


def test_with_a_site_the_framings_are_of_the_sites_copy() -> None:
    x = crops(1)
    cfg = PLAIN.replace(ssim_target=None, early_stop=True, check_every=3, steps=3, margin=1e6)

    def site(batch: torch.Tensor) -> torch.Tensor:
        return batch * 0.8 + 0.1

    plain, seen = _editor_inputs(x, cfg, site)
    framings = diversity.framings(x.shape[-1])
    assert len(seen) == plain + 2 * len(framings)
    for framing in framings:
        clean = editor_input(framing(site(x)), tiny_stargan().info.resolution)
        assert any(torch.allclose(s[:1], clean, atol=1e-5) for s in seen)


def test_the_clean_framed_edits_are_made_once_per_run() -> None:
    x = crops(1)
    cfg = PLAIN.replace(ssim_target=None, early_stop=True, check_every=2, steps=6, margin=1e6)
    plain, seen = _editor_inputs(x, cfg)
    checks = cfg.steps // cfg.check_every
    assert len(seen) == plain + len(diversity.framings(x.shape[-1])) * (checks + 1)


def _site_run(transform: Transform, grid: torch.Tensor | None,
              cfg: GraspConfig) -> tuple[int, torch.Tensor]:
    """How many forwards a run through ``transform`` makes, and its images."""
    editor = tiny_stargan()
    calls: list[int] = []
    handle = editor.register_forward_pre_hook(lambda m, args: calls.append(1))
    try:
        result = grasp(crops(1), [editor], cfg, transform=transform, grid=grid)
    finally:
        handle.remove()
    return len(calls), result.images


def test_a_site_copy_that_draws_nothing_is_edited_clean_once_per_run() -> None:
    cfg = PLAIN.replace(ssim_target=None, early_stop=True, check_every=2, steps=6, margin=1e6,
                        check_framings=True)
    grid = torch.tensor([[3, 5, 0]])  # the crop's place on the block grid is known

    def pipeline() -> SitePipeline:
        return build_site_pipeline(SiteSpec(jpeg_quality=(85, 85)), seed=4)

    fixed = pipeline()
    assert fixed.is_deterministic(grid_known=True)
    cached, images = _site_run(fixed, grid, cfg)
    opaque = pipeline()  # the same pipeline, not known to draw nothing: edited every check
    uncached, reference = _site_run(lambda b, grid=None: opaque(b, grid), grid, cfg)
    checks = cfg.steps // cfg.check_every
    views = 1 + len(diversity.framings(crops(1).shape[-1]))  # the site's copy, its framings
    assert cached == uncached - views * (checks - 1)
    assert torch.equal(images, reference)


@pytest.mark.parametrize(("spec", "grid_known", "fixed"), [
    (SiteSpec(jpeg_quality=(85, 85)), True, True),
    (SiteSpec(jpeg_quality=(85, 85)), False, False),  # a drawn block-grid phase
    (SiteSpec(jpeg_quality=(80, 90)), True, False),  # a drawn quality
    (SiteSpec(max_side=64, blur_sigma=(0.5, 0.5)), False, True),
    (SiteSpec(blur_sigma=(0.0, 0.5)), True, False),  # a drawn σ
])
def test_a_site_pipeline_knows_whether_it_draws(spec: SiteSpec, grid_known: bool,
                                                fixed: bool) -> None:
    pipeline = build_site_pipeline(spec, image_long_side=128)
    assert pipeline.is_deterministic(grid_known) is fixed


@pytest.mark.parametrize(("field", "value"), [("input_diversity", -0.1),
                                              ("input_diversity", 0.6),
                                              ("diversity_prob", 0.0),
                                              ("diversity_prob", 1.5),
                                              ("check_framings", 1)])
def test_bad_diversity_settings_are_refused(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        GraspConfig(**{field: value})


def test_diversity_is_off_by_default() -> None:
    assert GraspConfig().input_diversity == 0.0
