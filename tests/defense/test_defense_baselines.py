"""PGD of Disrupting Deepfakes and the weighted-sum ablation, through the shared loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from grasp_guard.defense.baselines import pgd, pgd_config, weighted_sum
from grasp_guard.defense.config import GraspConfig
from grasp_guard.defense.grasp import grasp
from grasp_guard.defense.metrics import evaluate_defense
from grasp_guard.models.editor import EditorInfo
from grasp_guard.models.stargan import CELEBA_ATTRIBUTES, Generator, StarGANEditor


def tiny_stargan(resolution: int = 32, seed: int = 0, c_dim: int = 5) -> StarGANEditor:
    torch.manual_seed(seed)
    attributes = CELEBA_ATTRIBUTES if c_dim == 5 else tuple(f"a{i}" for i in range(c_dim))
    gen = Generator(conv_dim=8, c_dim=c_dim, repeat_num=1)
    info = EditorInfo("tiny", resolution, attributes, seeded=True)
    return StarGANEditor(gen, info).eval().freeze()


def crops(n: int = 2, size: tuple[int, int] = (24, 28)) -> torch.Tensor:
    images = [data.astronaut(), data.chelsea(), data.coffee()][:n]
    x = torch.cat([F.interpolate(torch.from_numpy(np.ascontiguousarray(i)).permute(2, 0, 1)[None]
                                 .float() / 255, size=size, mode="area") for i in images])
    return torch.round(x * 255) / 255


def test_pgd_config_is_the_published_attack_on_the_unit_scale() -> None:
    cfg = pgd_config()
    assert (cfg.eps, cfg.alpha, cfg.steps) == pytest.approx((0.025, 0.005, 10))
    assert cfg.init == "uniform" and cfg.init_scale == 1.0 and cfg.step_rule == "sign"
    assert cfg.lambda_ssim == cfg.lambda_lf == 0.0 and not cfg.early_stop
    assert not (cfg.projection or cfg.cross_projection or cfg.normalize)
    assert cfg.smoothing == "none"


def test_pgd_per_edit_shape_budget_and_pairing() -> None:
    editor, x = tiny_stargan(), crops()
    r = pgd(x, [editor], steps=3)
    assert r.images.shape == (2, 5, *x.shape[1:])
    for name in ("iterations", "psnr", "ssim", "distortion", "dsr"):
        assert getattr(r, name).shape == (2, 5)
    assert r.iterations.eq(3).all()
    # ε = 0.05 on [-1, 1] is 0.025 on [0, 1]; x is quantised, so rounding cannot exceed it
    assert (r.images - x.unsqueeze(1)).abs().max().item() <= 0.025 + 1e-6
    scaled = r.images * 255
    torch.testing.assert_close(scaled, scaled.round(), rtol=0, atol=1e-4)
    m = evaluate_defense(editor, x, r.images)
    torch.testing.assert_close(m.distortion, r.distortion)
    # pair (n, e) is attacked on edit e alone: the same as a joint attack with that edit only
    e = 2
    single = pgd(x, [editor], steps=3, per_edit=False, conditions=[editor.conditions()[e:e + 1]])
    torch.testing.assert_close(r.images[:, e], single.images)


def ruiz_linf_pgd(model, x_nat, c, start, eps=0.05, a=0.01, k=10):  # type: ignore[no-untyped-def]
    """LinfPGDAttack.perturb of Disrupting Deepfakes, transcribed on its own [-1, 1] scale."""
    with torch.no_grad():
        y = model(x_nat, c)
    x = x_nat + start
    for _ in range(k):
        x.requires_grad_(True)
        loss = F.mse_loss(model(x, c), y)
        (grad,) = torch.autograd.grad(loss, x)
        eta = torch.clamp(x + a * grad.sign() - x_nat, min=-eps, max=eps)
        x = torch.clamp(x_nat + eta, min=-1, max=1).detach()
    return x


def test_pgd_per_edit_is_the_published_attack_step_for_step() -> None:
    editor = tiny_stargan()
    x = torch.round((0.1 + 0.8 * crops(1, (32, 32))) * 255) / 255  # no clamp at the start
    e = 3
    c = editor.conditions()[e : e + 1]
    ours = pgd(x, [editor], steps=10, per_edit=False, conditions=[c]).images
    noise = torch.empty_like(x).uniform_(-0.025, 0.025, generator=torch.Generator().manual_seed(0))
    theirs = ruiz_linf_pgd(editor.generator, x * 2 - 1, c, start=2 * noise)
    agree = (torch.round((theirs + 1) / 2 * 255) / 255 == ours).float().mean().item()
    assert agree > 0.999  # (exactly 1.0 here; a float32 sign tie may flip a pixel elsewhere)


def test_pgd_disrupts_more_per_edit_than_jointly() -> None:
    editor, x = tiny_stargan(), crops(1)
    own = pgd(x, [editor], steps=4)
    joint = pgd(x, [editor], steps=4, per_edit=False)
    assert joint.images.shape == x.shape and joint.distortion.shape == (1,)
    assert own.distortion.mean() > joint.distortion.mean()
    clean = evaluate_defense(editor, x, x).distortion
    assert (own.distortion > clean).all()


def test_pgd_per_edit_over_several_editors() -> None:
    a, b = tiny_stargan(32), tiny_stargan(16, seed=1, c_dim=3)
    r = pgd(crops(1), [a, b], steps=1)
    assert r.images.shape[:2] == (1, 8)
    assert r.distortion.shape == (1, 8)


def test_pgd_passes_the_transform_on() -> None:
    editor, x = tiny_stargan(), crops(1)
    calls: list[int] = []

    def transform(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.shape[0])
        return t

    pgd(x, [editor], steps=2, transform=transform)
    assert calls == [10, 10]  # the 5 (image, edit) attacks and their clean sides, one draw


def test_weighted_sum_is_grasp_without_projection_and_smoothing() -> None:
    editor, x = tiny_stargan(), crops()
    cfg = GraspConfig(eps=6 / 255, alpha=1 / 255, steps=4, early_stop=False, psnr_floor=None,
                      ssim_floor=None)
    plain = weighted_sum(x, [editor], cfg)
    same = grasp(x, [editor], cfg.replace(projection=False, cross_projection=False,
                                          smoothing="none"))
    assert torch.equal(plain.images, same.images)
    unsmoothed_grasp = grasp(x, [editor], cfg.replace(smoothing="none"))
    assert not torch.equal(plain.images, unsmoothed_grasp.images)
