"""StarGAN: the official architecture, test targets, per-instance norms and checkpoint loading."""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from _zoo_helpers import tiny_stargan
from torch import nn

from grasp_guard.errors import CheckpointError
from grasp_guard.models.editor import EditorInfo
from grasp_guard.models.stargan import (
    CELEBA_ATTRIBUTES,
    Generator,
    StarGANEditor,
    stargan_conditions,
)
from grasp_guard.models.zoo import load_stargan


@pytest.fixture(scope="module")
def full_generator() -> Generator:
    torch.manual_seed(0)
    return Generator()


def test_full_size_parameter_count() -> None:
    with torch.device("meta"):
        generator = Generator()
    assert sum(p.numel() for p in generator.parameters()) == 8_430_528


@pytest.mark.parametrize(
    ("key", "shape"),
    [
        ("main.0.weight", [64, 8, 7, 7]),
        ("main.1.weight", [64]),
        ("main.1.running_mean", [64]),
        ("main.9.main.0.weight", [256, 256, 3, 3]),
        ("main.14.main.4.running_var", [256]),
        ("main.15.weight", [256, 128, 4, 4]),
        ("main.18.weight", [128, 64, 4, 4]),
        ("main.21.weight", [3, 64, 7, 7]),
    ],
)
def test_full_size_key_shapes(key: str, shape: list[int]) -> None:
    with torch.device("meta"):
        state = Generator().state_dict()
    assert list(state[key].shape) == shape


def test_no_convolution_has_a_bias() -> None:
    with torch.device("meta"):
        generator = Generator()
    convs = [m for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(convs) == 6 + 2 * 6 and all(m.bias is None for m in convs)


@pytest.mark.parametrize(
    "labels",
    [[1, 0, 0, 1, 1], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 1, 0, 0, 1]],
)
def test_five_targets_with_exclusive_hair_colours(labels: list[int]) -> None:
    source = torch.tensor(labels, dtype=torch.float)
    targets = stargan_conditions(source, CELEBA_ATTRIBUTES)
    assert targets.shape == (5, 5)
    for hair in range(3):
        assert targets[hair, :3].tolist() == [float(i == hair) for i in range(3)]
        assert torch.equal(targets[hair, 3:], source[3:])
    for flip in (3, 4):
        expected = source.clone()
        expected[flip] = 1 - expected[flip]
        assert torch.equal(targets[flip], expected)


def _official(generator: Generator) -> Generator:
    """The official module: plain InstanceNorm2d(track_running_stats=True), in train mode
    because the official test code never calls eval()."""
    official = copy.deepcopy(generator)
    for module in official.modules():
        if isinstance(module, nn.InstanceNorm2d):
            module.__class__ = nn.InstanceNorm2d
    return official.train()


def test_per_instance_norm_matches_official_train_mode_and_ignores_the_batch() -> None:
    generator = tiny_stargan()
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, nn.InstanceNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 3)
    editor = StarGANEditor(generator, EditorInfo("tiny", 16, CELEBA_ATTRIBUTES)).eval()
    x = torch.rand(3, 3, 16, 16)
    c = stargan_conditions(torch.tensor([1.0, 0, 0, 1, 0]), CELEBA_ATTRIBUTES)[:3]
    running = [b.clone() for b in generator.buffers()]
    with torch.no_grad():
        ours = editor(x, c)
        alone = editor(x[1:2], c[1:2])
        official = _official(generator)(x * 2 - 1, c)
        with_running_stats = _official(generator).eval()(x * 2 - 1, c)
    torch.testing.assert_close(ours[1:2], alone)
    torch.testing.assert_close(ours, official)
    assert (ours - with_running_stats).abs().max() > 1e-2  # the check above can fail
    assert all(torch.equal(a, b) for a, b in zip(running, generator.buffers(), strict=True))


def _state(generator: Generator, *, counters: bool) -> dict[str, torch.Tensor]:
    state = generator.state_dict()
    if not counters:
        for key in [k for k in state if k.endswith("num_batches_tracked")]:
            del state[key]
    return state


@pytest.mark.parametrize("counters", [True, False])
@pytest.mark.parametrize("container", [OrderedDict, dict])
def test_official_state_dict_loads_with_or_without_batch_counters(
    tmp_path: Path, full_generator: Generator, counters: bool, container: type
) -> None:
    path = tmp_path / "200000-G.ckpt"
    torch.save(container(_state(full_generator, counters=counters)), path)
    editor = load_stargan(path)
    assert editor.info.name == "stargan-celeba-128" and editor.info.resolution == 128
    assert editor.info.attributes == CELEBA_ATTRIBUTES and not editor.info.seeded
    assert not any(p.requires_grad for p in editor.parameters())
    loaded = editor.generator.state_dict()
    for key, value in full_generator.state_dict().items():
        if counters or not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded[key], value), key


def _save_tiny(tmp_path: Path, state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / "200000-G.ckpt"
    torch.save(state, path)
    return path


def _load_tiny(path: Path) -> StarGANEditor:
    return load_stargan(path, conv_dim=8, repeat_num=1, resolution=16)


def test_tiny_checkpoint_reproduces_its_generator(tmp_path: Path) -> None:
    source = tiny_stargan()
    editor = _load_tiny(_save_tiny(tmp_path, source.state_dict()))
    x, c = torch.rand(2, 3, 16, 16), torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 1]])
    with torch.no_grad():
        torch.testing.assert_close(editor(x, c), source(x * 2 - 1, c), rtol=0, atol=0)


def test_wrong_shapes_are_named(tmp_path: Path) -> None:
    torch.manual_seed(0)
    wider = Generator(conv_dim=16, repeat_num=1)
    with pytest.raises(
        CheckpointError,
        match=r"wrong shape: main\.0\.weight \[16, 8, 7, 7\] \(expected \[8, 8, 7, 7\]\)",
    ):
        _load_tiny(_save_tiny(tmp_path, wider.state_dict()))


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    state = tiny_stargan().state_dict()
    del state["main.10.weight"]
    state["main.25.weight"] = torch.zeros(1)
    with pytest.raises(
        CheckpointError, match=r"missing: main\.10\.weight; unexpected: main\.25\.weight"
    ):
        _load_tiny(_save_tiny(tmp_path, state))


def test_only_batch_counters_may_be_missing(tmp_path: Path) -> None:
    state = tiny_stargan().state_dict()
    del state["main.1.running_var"]
    with pytest.raises(CheckpointError, match=r"missing: main\.1\.running_var\)"):
        _load_tiny(_save_tiny(tmp_path, state))


def test_data_parallel_prefix_is_accepted(tmp_path: Path) -> None:
    source = tiny_stargan()
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    editor = _load_tiny(_save_tiny(tmp_path, state))
    assert torch.equal(editor.generator.main[0].weight, source.main[0].weight)


@pytest.mark.parametrize("payload", [{"G": {}}, [1, 2], {"main.0.weight": 3}])
def test_non_state_dicts_are_rejected(tmp_path: Path, payload: object) -> None:
    with pytest.raises(CheckpointError):
        _load_tiny(_save_tiny(tmp_path, payload))  # type: ignore[arg-type]
