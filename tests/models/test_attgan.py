"""AttGAN: official keys and shapes, test edits, eval-mode behaviour and checkpoint loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _zoo_helpers import TINY_ATTGAN, official_settings, tiny_attgan, write_attgan_experiment

from grasp_guard.errors import CheckpointError, ConfigError
from grasp_guard.models.attgan import (
    ATTGAN_ATTRIBUTES,
    AttGANConfig,
    AttGANEditor,
    Generator,
    attgan_conditions,
    load_attgan,
    parse_settings,
    resolve_conflicts,
)

A = ATTGAN_ATTRIBUTES


def _shapes(inject_layers: int) -> dict[str, list[int]]:
    with torch.device("meta"):
        generator = Generator(inject_layers=inject_layers)
    return {k: list(v.shape) for k, v in generator.state_dict().items()}


@pytest.mark.parametrize(
    ("inject", "key", "shape"),
    [
        (0, "enc_layers.0.layers.0.weight", [64, 3, 4, 4]),
        (0, "enc_layers.4.layers.0.weight", [1024, 512, 4, 4]),
        (0, "enc_layers.4.layers.1.running_var", [1024]),
        (0, "dec_layers.0.layers.0.weight", [1037, 1024, 4, 4]),
        (0, "dec_layers.1.layers.0.weight", [1536, 512, 4, 4]),
        (0, "dec_layers.2.layers.0.weight", [512, 256, 4, 4]),
        (0, "dec_layers.3.layers.0.weight", [256, 128, 4, 4]),
        (0, "dec_layers.4.layers.0.weight", [128, 3, 4, 4]),
        (0, "dec_layers.4.layers.0.bias", [3]),
        (1, "dec_layers.0.layers.0.weight", [1037, 1024, 4, 4]),
        (1, "dec_layers.1.layers.0.weight", [1549, 512, 4, 4]),
        (1, "dec_layers.2.layers.0.weight", [512, 256, 4, 4]),
    ],
)
def test_full_size_keys_and_shapes_match_the_release(
    inject: int, key: str, shape: list[int]
) -> None:
    assert _shapes(inject)[key] == shape


def test_full_size_key_set() -> None:
    keys = set(_shapes(0))
    norm = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    expected = {f"enc_layers.{i}.layers.0.weight" for i in range(5)}
    expected |= {f"enc_layers.{i}.layers.1.{n}" for i in range(5) for n in norm}
    expected |= {f"dec_layers.{i}.layers.0.weight" for i in range(4)}
    expected |= {f"dec_layers.{i}.layers.1.{n}" for i in range(4) for n in norm}
    expected |= {"dec_layers.4.layers.0.weight", "dec_layers.4.layers.0.bias"}
    assert keys == expected


def test_conditions_are_source_plus_one_flip_per_attribute() -> None:
    labels = torch.tensor([0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1], dtype=torch.float)
    c = attgan_conditions(labels, A)
    assert c.shape == (14, 13)
    torch.testing.assert_close(c[0], (labels * 2 - 1) * 0.5)
    for i in range(13):
        assert c[1 + i, i] == (1.0 if labels[i] == 0 else -1.0)  # ±test_int
        others = torch.cat([c[1 + i, :i], c[1 + i, i + 1 :]])
        assert set(others.abs().tolist()) == {0.5}  # ±thres_int


@pytest.mark.parametrize(
    ("source", "flipped", "cleared"),
    [
        ({"Black_Hair"}, "Blond_Hair", {"Black_Hair"}),
        ({"Blond_Hair"}, "Brown_Hair", {"Blond_Hair"}),
        ({"Brown_Hair"}, "Black_Hair", {"Brown_Hair"}),
        ({"Bangs"}, "Bald", {"Bangs"}),
        ({"Bald"}, "Bangs", {"Bald"}),
        ({"No_Beard"}, "Mustache", {"No_Beard"}),
        ({"Mustache"}, "No_Beard", {"Mustache"}),
        ({"Black_Hair", "Bangs", "No_Beard"}, "Male", set()),
        ({"Black_Hair"}, "Black_Hair", set()),  # switching a hair colour off sets no other
    ],
)
def test_exclusive_groups_are_resolved_when_flipping(
    source: set[str], flipped: str, cleared: set[str]
) -> None:
    labels = torch.tensor([float(a in source) for a in A])
    row = attgan_conditions(labels, A)[1 + A.index(flipped)]
    on = {a for a, v in zip(A, row.tolist(), strict=True) if v > 0}
    assert on == (source ^ {flipped}) - cleared


def test_resolve_conflicts_leaves_its_input_alone() -> None:
    labels = torch.tensor([float(a in {"Blond_Hair", "Black_Hair"}) for a in A])
    before = labels.clone()
    out = resolve_conflicts(labels, "Blond_Hair", A)
    assert torch.equal(labels, before)
    assert out[A.index("Black_Hair")] == 0 and out[A.index("Blond_Hair")] == 1


@pytest.mark.parametrize("labels", [torch.zeros(12), torch.full((13,), 0.5)])
def test_conditions_reject_bad_labels(labels: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="labels"):
        attgan_conditions(labels, A)


def _write(tmp_path: Path, inject: int, **overrides: object) -> tuple[Path, Generator]:
    generator = tiny_attgan(inject_layers=inject)
    path = write_attgan_experiment(
        tmp_path / f"exp{inject}", generator, official_settings(inject, **overrides)
    )
    return path, generator.eval()


@pytest.mark.parametrize("inject", [0, 1])
def test_official_experiment_loads_and_matches_the_source(tmp_path: Path, inject: int) -> None:
    path, source = _write(tmp_path, inject)
    editor = load_attgan(path)
    assert isinstance(editor, AttGANEditor)
    assert not editor.training and not any(p.requires_grad for p in editor.parameters())
    assert editor.config.inject_layers == inject and editor.info.resolution == 16
    x = torch.rand(2, 3, 16, 16)
    c = editor.conditions()[:2]
    with torch.no_grad():
        torch.testing.assert_close(editor(x, c), source(x * 2 - 1, c), rtol=0, atol=0)


def test_eval_mode_uses_running_stats(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, 0)
    editor = load_attgan(path)
    x, c = torch.rand(3, 3, 16, 16), editor.conditions()[:3]
    with torch.no_grad():
        together = editor(x, c)
        alone = editor(x[:1], c[:1])
    torch.testing.assert_close(together[:1], alone)  # no batch statistics


def test_config_must_agree_with_setting_txt(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, 1)
    expected = AttGANConfig(inject_layers=0, **{k: v for k, v in TINY_ATTGAN.items()})
    with pytest.raises(CheckpointError, match=r"inject_layers: 0 != 1"):
        load_attgan(path, expected)


def test_without_setting_txt_the_config_decides_and_shapes_are_checked(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, 1)
    (path.parent.parent / "setting.txt").unlink()
    with pytest.raises(
        CheckpointError,
        match=r"dec_layers\.1\.layers\.0\.weight \[37, 8, 4, 4\] \(expected \[24, 8, 4, 4\]\)",
    ):
        load_attgan(path, AttGANConfig(inject_layers=0, **TINY_ATTGAN))
    assert load_attgan(path, AttGANConfig(inject_layers=1, **TINY_ATTGAN)).config.inject_layers == 1


def test_missing_key_is_named(tmp_path: Path) -> None:
    path, generator = _write(tmp_path, 0)
    state = generator.state_dict()
    del state["enc_layers.1.layers.1.running_mean"]
    state["dec_layers.1.layers.0.bias"] = torch.zeros(8)
    torch.save({"G": state}, path)
    with pytest.raises(
        CheckpointError,
        match=r"missing: enc_layers\.1\.layers\.1\.running_mean; "
        r"unexpected: dec_layers\.1\.layers\.0\.bias",
    ):
        load_attgan(path)


def test_a_file_without_g_is_rejected(tmp_path: Path) -> None:
    path, generator = _write(tmp_path, 0)
    torch.save(generator.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"\{'G': state_dict\}"):
        load_attgan(path)


def test_setting_txt_beside_the_file_is_found(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, 1)
    beside = tmp_path / "flat"
    beside.mkdir()
    (path.parent.parent / "setting.txt").rename(beside / "setting.txt")
    path.rename(beside / "weights.49.pth")
    assert load_attgan(beside / "weights.49.pth").config.inject_layers == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"enc_norm": "switchnorm"}, "enc_norm"),
        ({"shortcut_layers": "1"}, "shortcut_layers"),
        ({"attrs": "Bald"}, "attrs"),
        ({"thres_int": None}, "thres_int"),
    ],
)
def test_bad_settings_are_config_errors(override: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings(official_settings(0, **override))


def test_settings_keep_training_thres_int_but_not_test_int(tmp_path: Path) -> None:
    config = parse_settings(official_settings(0, thres_int=0.25, test_int=2.0))
    assert config.thres_int == 0.25 and config.test_int == 1.0


def test_unreadable_setting_txt(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, 0)
    (path.parent.parent / "setting.txt").write_text("{not json")
    with pytest.raises(ConfigError, match=r"setting\.txt"):
        load_attgan(path)
    (path.parent.parent / "setting.txt").write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError, match="JSON object"):
        load_attgan(path)
