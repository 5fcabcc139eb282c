"""Settings: embedded defaults, the YAML file, env and flags, and their validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from grasp_guard.errors import ConfigError
from grasp_guard.faces.detect import HaarDetector
from grasp_guard.models.weights import CACHE_ENV
from grasp_guard.service.cpu import CpuStage
from grasp_guard.service.settings import (
    DEFAULT_CONFIG_PATH,
    TOKEN_ENV,
    Settings,
    is_loopback,
    load_settings,
    parse_autoscale,
)


def test_config_file_documents_the_embedded_defaults() -> None:
    assert DEFAULT_CONFIG_PATH.is_file()
    assert load_settings(DEFAULT_CONFIG_PATH, env={}) == Settings()
    assert load_settings(env={}) == Settings()


def test_defaults_bind_loopback_with_the_default_set_on_auto() -> None:
    s = Settings()
    assert (s.host, s.token, s.models, s.device) == ("127.0.0.1", None, ("default",), "auto")


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.168.1.5", False),
    ("example.org", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.7", "example.org"])
def test_non_loopback_bind_requires_a_token(host: str) -> None:
    with pytest.raises(ConfigError, match="requires a bearer token"):
        Settings(host=host)
    assert Settings(host=host, token="s3cret-token").token == "s3cret-token"


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "service.yaml"
    path.write_text("host: 0.0.0.0\nport: 9000\nmax_batch: 4\nmodels: [reference]\n"
                    "token: from-file\n")
    s = load_settings(path, env={})
    assert (s.host, s.port, s.max_batch, s.token) == ("0.0.0.0", 9000, 4, "from-file")
    s = load_settings(path, env={TOKEN_ENV: "from-env"})
    assert s.token == "from-env"
    s = load_settings(path, env={TOKEN_ENV: "from-env"}, token="from-flag", port=None,
                      max_batch=16)
    assert (s.token, s.port, s.max_batch) == ("from-flag", 9000, 16)


def test_env_token_makes_a_public_bind_valid(tmp_path: Path) -> None:
    path = tmp_path / "service.yaml"
    path.write_text("host: 0.0.0.0\n")
    with pytest.raises(ConfigError, match="token"):
        load_settings(path, env={})
    assert load_settings(path, env={TOKEN_ENV: "t0ken"}).token == "t0ken"


@pytest.mark.parametrize("text,match", [
    ("colour: blue\n", "unknown service setting"),
    ("- a list\n", "mapping"),
    ("port: [1\n", "cannot read"),
])
def test_bad_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "service.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_settings(path, env={})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml", env={})


@pytest.mark.parametrize("changes", [
    {"port": 70000}, {"port": "80"}, {"max_batch": 0}, {"max_batch": True},
    {"gather_ms": -1}, {"gather_ms": float("nan")}, {"queue_size": 0}, {"max_bytes": 10},
    {"max_pixels": 100}, {"deadline_s": 0}, {"retry_after_s": 1.5}, {"cpu_threads": 0},
    {"models": ()}, {"models": ("",)}, {"token": ""}, {"token": "two words"},
    {"token": "caf\u00e9"}, {"shutdown_timeout_s": -1}, {"host": ""},
    {"admission_retime_s": 0}, {"admission_retime_s": float("inf")},
    {"backend": "spark"}, {"ray_address": "10.0.0.1:6379"}, {"replicas": 0},
    {"autoscale": (0, 2)}, {"autoscale": (3, 2)}, {"autoscale": (1, 2), "replicas": 2},
    {"replica_cpus": 0}, {"replica_gpus": -1}, {"detector": "mtcnn"}, {"detector": "yunet"},
    {"detector_model": ""}, {"detector_model": "m.onnx"}, {"detector": "haar", "detector_model": "m.onnx"},
])
def test_invalid_values(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Settings(**changes)


def test_repr_hides_the_token() -> None:
    text = repr(Settings(token="very-secret-value"))
    assert "very-secret-value" not in text and "<hidden>" in text


@pytest.mark.parametrize("text,bounds", [("1:4", (1, 4)), ("2:2", (2, 2))])
def test_parse_autoscale(text: str, bounds: tuple[int, int]) -> None:
    assert parse_autoscale(text) == bounds


@pytest.mark.parametrize("text", ["4", "0:2", "3:2", "a:b", "1:", ":4", "1:2:3"])
def test_parse_autoscale_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="MIN:MAX"):
        parse_autoscale(text)


def test_autoscale_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "service.yaml"
    path.write_text("backend: ray\nautoscale: '1:3'\n")
    assert load_settings(path, env={}).autoscale == (1, 3)
    path.write_text("autoscale: '3'\n")
    with pytest.raises(ConfigError, match="autoscale"):
        load_settings(path, env={})


def test_the_service_detects_with_the_detector_it_is_told(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    cpu = CpuStage(1, 10_000_000, "haar")
    assert isinstance(cpu._prepare_pool.submit(cpu._detector).result(), HaarDetector)
    with pytest.raises(ConfigError, match="models fetch centerface"):
        CpuStage(1, 10_000_000, "centerface")  # at start-up, not on a request
