"""The feature-level defense term: the tap, the divergence, and its use by the GRASP loop."""

from __future__ import annotations

import pytest
import torch
from test_defense_grasp import PLAIN, crops, tiny_stargan

from grasp_guard.defense import features
from grasp_guard.defense.config import GraspConfig
from grasp_guard.defense.grasp import grasp
from grasp_guard.errors import ConfigError
from grasp_guard.models.cyclegan import (
    CycleGANConfig,
    CycleGANEditor,
    ResnetGenerator,
    cyclegan_info,
)
from grasp_guard.models.zerodce import ZeroDCE, ZeroDCEEditor, zerodce_info

FEATURES = PLAIN.replace(feature_weight=1.0)


def _editors() -> list:
    torch.manual_seed(0)
    return [tiny_stargan(),
            CycleGANEditor(ResnetGenerator(CycleGANConfig(ngf=4, n_blocks=2)),
                           cyclegan_info("c", 16)),
            ZeroDCEEditor(ZeroDCE(2), zerodce_info("z", 16))]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_each_editor_names_layers_its_forward_runs(index: int) -> None:
    editor = _editors()[index]
    with features.FeatureTap([editor]) as tap:
        editor(torch.rand(2, 3, 16, 16), editor.conditions()[:1].expand(2, -1))
    assert len(tap.outputs) == 2 and all(o.shape[0] == 2 for o in tap.outputs)
    assert all(m._forward_hooks == {} for m in editor.feature_layers())  # removed on exit


def test_identical_features_diverge_by_zero_and_moved_ones_do_not() -> None:
    clean = [torch.randn(6, 4, 5, 5), torch.randn(6, 8, 3, 3)]
    assert torch.equal(features.feature_divergence(clean, clean, 3), torch.zeros(3))
    moved = [clean[0].clone(), clean[1]]
    moved[0][2:4] += 1.0  # the second sample's two edits
    d = features.feature_divergence(moved, clean, 3)
    assert d[0] == 0 and d[2] == 0 and d[1] > 0


def test_the_divergence_is_scale_free() -> None:
    clean, adv = [torch.randn(2, 4, 5, 5)], [torch.randn(2, 4, 5, 5)]
    assert torch.allclose(features.feature_divergence(adv, clean, 2),
                          features.feature_divergence([adv[0] * 10], [clean[0] * 10], 2))


def test_a_shift_of_the_channel_statistics_counts() -> None:
    """A per-channel offset moves the activations and the means: more than the offset alone."""
    clean = [torch.randn(1, 4, 6, 6)]
    offset = features.feature_divergence([clean[0] + 0.5], clean, 1)
    scale = clean[0].square().mean()
    assert torch.allclose(offset, torch.tensor([2 * 0.25 / scale]), rtol=1e-4)


def test_no_layers_no_term_and_mismatches_are_refused() -> None:
    assert torch.equal(features.feature_divergence([], [], 2), torch.zeros(2))
    with pytest.raises(ValueError, match="same layers"):
        features.feature_divergence([torch.zeros(1, 1, 2, 2)], [], 1)
    with pytest.raises(ValueError, match="shapes differ"):
        features.feature_divergence([torch.zeros(1, 1, 2, 2)], [torch.zeros(1, 1, 3, 3)], 1)


def test_the_term_has_a_gradient_towards_moving_the_features() -> None:
    editor = tiny_stargan()
    x = crops(1)
    conditions = editor.conditions().unsqueeze(0)
    xp = (x + 0.01 * torch.randn_like(x)).clamp(0, 1).requires_grad_(True)
    from grasp_guard.defense.metrics import run_edits

    with features.FeatureTap([editor]) as tap:
        run_edits(editor, xp, conditions, 16)
    loss = features.feature_loss(tap, [(editor, conditions, 16)], x)
    (grad,) = torch.autograd.grad(loss.sum(), xp)
    assert loss.item() > 0 and grad.abs().sum() > 0


def test_the_loop_uses_the_term_and_stays_reproducible() -> None:
    editors, x = _editors(), crops(2)
    cfg = FEATURES.replace(steps=3)
    plain = grasp(x, editors, cfg.replace(feature_weight=0.0))
    featured = grasp(x, editors, cfg)
    assert not torch.equal(featured.images, plain.images)
    assert torch.equal(featured.images, grasp(x, editors, cfg).images)
    assert all(m._forward_hooks == {} for e in editors for m in e.feature_layers())


def test_the_term_goes_through_the_diversity_view() -> None:
    editor, x = tiny_stargan(), crops(1)
    cfg = FEATURES.replace(steps=2, input_diversity=0.2, diversity_prob=1.0)
    assert not torch.equal(grasp(x, [editor], cfg).images,
                           grasp(x, [editor], cfg.replace(feature_weight=0.0)).images)


def test_a_negative_weight_is_refused_and_the_term_is_off_by_default() -> None:
    with pytest.raises(ConfigError, match="feature_weight"):
        GraspConfig(feature_weight=-1.0)
    assert GraspConfig().feature_weight == 0.0
