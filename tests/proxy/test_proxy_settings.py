"""The pure parsers of the addon's options."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy_addon import settings


def test_policy_path(policy_file: Path) -> None:
    assert settings.parse_policy_path("") is None
    assert settings.parse_policy_path("  ") is None
    policy = settings.parse_policy_path(str(policy_file))
    assert policy is not None and [s.name for s in policy.sites] == ["pics", "strict", "signed",
                                                                    "signed-strict"]


@pytest.mark.parametrize("urls", [["http://127.0.0.1:8765"], ["https://a.example/base", "http://b:1"]])
def test_endpoints(urls: list[str]) -> None:
    assert settings.parse_endpoints(urls) == tuple(urls)


@pytest.mark.parametrize("urls", [[], ["127.0.0.1:8765"], ["http://"], ["http://h/#x"]])
def test_bad_endpoints(urls: list[str]) -> None:
    with pytest.raises(ValueError):
        settings.parse_endpoints(urls)


def test_token_falls_back_to_the_environment() -> None:
    assert settings.parse_token("given", {"GRASP_GUARD_TOKEN": "env"}) == "given"
    assert settings.parse_token("", {"GRASP_GUARD_TOKEN": "env"}) == "env"
    assert settings.parse_token("", {}) is None
    with pytest.raises(ValueError):
        settings.parse_token("tab\there", {})


@pytest.mark.parametrize(("text", "seconds"), [("60", 60.0), ("0.25", 0.25), (" 3 ", 3.0)])
def test_timeout(text: str, seconds: float) -> None:
    assert settings.parse_timeout(text) == seconds


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "", "1s"])
def test_bad_timeout(text: str) -> None:
    with pytest.raises(ValueError):
        settings.parse_timeout(text)


def test_max_buffer() -> None:
    assert settings.parse_max_buffer(1024) == 1024
    with pytest.raises(ValueError):
        settings.parse_max_buffer(1023)
