"""The engine's shipped configuration files: package data, replaced by a variable or a flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from grasp_guard.config import SERVICE_CONFIG_ENV, ZOO_ENV, config_path, shipped_path
from grasp_guard.models.zoo_entries import DEFAULT_ZOO_PATH
from grasp_guard.service.settings import DEFAULT_CONFIG_PATH, load_settings

PACKAGE_CONFIG = Path(__file__).resolve().parents[1] / "grasp_guard" / "config"


@pytest.mark.parametrize("name", ["models.yaml", "service.yaml"])
def test_shipped_files_are_the_package_data(name: str) -> None:
    assert shipped_path(name) == PACKAGE_CONFIG / name
    assert shipped_path(name).is_file()


def test_the_defaults_are_the_shipped_files() -> None:
    assert DEFAULT_CONFIG_PATH == PACKAGE_CONFIG / "service.yaml"
    assert DEFAULT_ZOO_PATH == PACKAGE_CONFIG / "models.yaml"  # unless $GRASP_GUARD_ZOO is set


@pytest.mark.parametrize(("env", "expected"), [
    ({}, PACKAGE_CONFIG / "models.yaml"),
    ({ZOO_ENV: ""}, PACKAGE_CONFIG / "models.yaml"),
    ({ZOO_ENV: "/srv/zoo.yaml"}, Path("/srv/zoo.yaml")),
    ({ZOO_ENV: "~/zoo.yaml"}, Path("~/zoo.yaml").expanduser()),
])
def test_config_path_takes_the_variable_first(env: dict[str, str], expected: Path) -> None:
    assert config_path("models.yaml", ZOO_ENV, env) == expected


def test_service_settings_variable_then_flag(tmp_path: Path) -> None:
    from_env = tmp_path / "env.yaml"
    from_env.write_text("port: 9001\n")
    from_flag = tmp_path / "flag.yaml"
    from_flag.write_text("port: 9002\n")
    assert load_settings(env={}).port == 8765
    assert load_settings(env={SERVICE_CONFIG_ENV: str(from_env)}).port == 9001
    assert load_settings(from_flag, env={SERVICE_CONFIG_ENV: str(from_env)}).port == 9002
