"""`grasp-guard models list | fetch | add`, run in-process through the real command line."""

from __future__ import annotations

import hashlib
import socket
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

from grasp_guard.cli import ExitStatus, main
from grasp_guard.models.weights import CACHE_ENV, WeightsCache


@pytest.fixture(autouse=True)
def cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(root))
    return root


def _table(out: str) -> dict[str, list[str]]:
    lines = out.strip().splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "EDITS", "CACHED", "SHA256", "SOURCE"]
    return {line.split()[0]: line.split() for line in lines[1:]}


def _served_stargan(server: Server) -> tuple[str, str]:
    """A tiny StarGAN release zip on the loopback server: (its URL, its member's SHA-256)."""
    zip_path = write_stargan_zip(server.root / "celeba.zip", tiny_stargan().state_dict())
    with zipfile.ZipFile(zip_path) as zf:
        return f"{server.url}/celeba.zip", hashlib.sha256(zf.read("200000-G.ckpt")).hexdigest()


def test_list_the_shipped_zoo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == ExitStatus.OK
    out = capsys.readouterr().out
    rows = _table(out)
    assert rows["stargan-celeba-128"] == [
        "stargan-celeba-128",
        "128px",
        "5",
        "no",
        "-",
        "https://www.dropbox.com/s/7e966qq0nlxwte4/celeba-128x128-5attrs.zip?dl=1",
    ]
    assert rows["attgan-celeba-128"][1:4] == ["128px", "14", "no"]
    assert rows["attgan-celeba-128-inject1"][1:5] == ["128px", "14", "no", "-"]
    assert all(
        line.endswith("local file (models add)")
        for line in out.splitlines()
        if line.startswith("attgan")
    )
    assert rows["reference"][1:4] == ["64px", "5", "yes"] and rows["reference"][-1] == "embedded"


def test_fetch_from_a_url_then_list(
    http_server: Server, make_zoo: ZooFactory, cache_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, digest = _served_stargan(http_server)
    zoo = str(make_zoo())
    assert main(["models", "fetch", "stargan-tiny", "--url", url, "--config", zoo]) == ExitStatus.OK
    out = capsys.readouterr().out
    assert f"stargan-tiny: {cache_root / 'stargan-tiny' / '200000-G.ckpt'}" in out
    assert f"sha256 {digest} (not pinned: set `sha256: {digest}`" in out
    assert main(["models", "list", "--config", zoo]) == ExitStatus.OK
    assert _table(capsys.readouterr().out)["stargan-tiny"][3:5] == ["yes", digest]


def test_fetch_with_a_pin(
    http_server: Server, make_zoo: ZooFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    url, digest = _served_stargan(http_server)
    zoo = str(make_zoo(stargan_url=url, stargan_sha256=digest))
    assert main(["models", "fetch", "stargan-tiny", "--config", zoo]) == ExitStatus.OK
    assert "(matches the pinned value)" in capsys.readouterr().out


def test_fetch_if_missing_fetches_again_when_the_pin_moved_or_the_file_changed(
    http_server: Server, make_zoo: ZooFactory, cache_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, digest = _served_stargan(http_server)
    zoo = str(make_zoo(stargan_url=url, stargan_sha256=digest))
    fetch = ["models", "fetch", "stargan-tiny", "--if-missing", "--config", zoo]
    assert main(fetch) == ExitStatus.OK and "(matches the pinned value)" in capsys.readouterr().out
    assert main(fetch) == ExitStatus.OK and "already cached" in capsys.readouterr().out
    WeightsCache(cache_root).path_for("stargan-tiny").write_bytes(b"cut short")  # type: ignore[union-attr]
    assert main(fetch) == ExitStatus.OK and "(matches the pinned value)" in capsys.readouterr().out
    moved = str(make_zoo(stargan_url=url, stargan_sha256="ab" * 32))  # a new release pinned
    assert main([*fetch[:-1], moved]) == ExitStatus.ERROR
    assert "already cached" not in capsys.readouterr().out


def test_fetch_with_the_server_down(
    make_zoo: ZooFactory, cache_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    zoo = str(make_zoo(stargan_url=f"http://127.0.0.1:{port}/celeba.zip"))
    assert main(["models", "fetch", "stargan-tiny", "--config", zoo]) == ExitStatus.ERROR
    assert "grasp-guard: error: cannot reach" in capsys.readouterr().err
    assert WeightsCache(cache_root).records() == {}


def test_fetch_without_a_url_points_to_add(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "fetch", "attgan-celeba-128"]) == ExitStatus.ERROR
    assert "grasp-guard models add attgan-celeba-128" in capsys.readouterr().err


def test_add_an_attgan_experiment(
    tmp_path: Path, make_zoo: ZooFactory, cache_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_attgan_experiment(
        tmp_path / "exp", tiny_attgan(inject_layers=1), official_settings(1)
    )
    zoo = str(make_zoo())
    assert (
        main(["models", "add", "attgan-tiny-inject1", str(path), "--config", zoo]) == ExitStatus.OK
    )
    assert "sha256" in capsys.readouterr().out
    assert (cache_root / "attgan-tiny-inject1" / "setting.txt").is_file()
    assert main(["models", "list", "--config", zoo]) == ExitStatus.OK
    rows = _table(capsys.readouterr().out)
    assert rows["attgan-tiny-inject1"][3] == "yes" and rows["attgan-tiny-inject0"][3] == "no"


def test_add_a_wrong_file_names_the_keys(
    tmp_path: Path, make_zoo: ZooFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "200000-G.ckpt"
    state = tiny_stargan().state_dict()
    del state["main.16.weight"]
    torch.save(state, path)
    assert (
        main(["models", "add", "stargan-tiny", str(path), "--config", str(make_zoo())])
        == ExitStatus.ERROR
    )
    assert "missing: main.16.weight" in capsys.readouterr().err


def test_the_cache_option_overrides_the_environment(
    tmp_path: Path, make_zoo: ZooFactory, cache_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "200000-G.ckpt"
    torch.save(tiny_stargan().state_dict(), path)
    other = tmp_path / "other"
    argv = [
        "models",
        "add",
        "stargan-tiny",
        str(path),
        "--config",
        str(make_zoo()),
        "--cache",
        str(other),
    ]
    assert main(argv) == ExitStatus.OK
    assert WeightsCache(other).path_for("stargan-tiny") is not None
    assert not cache_root.exists()


def test_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "fetch", "nope"]) == ExitStatus.ERROR
    assert "unknown model 'nope'" in capsys.readouterr().err
