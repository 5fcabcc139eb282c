"""Validation, presets and budget scaling of GraspConfig."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from grasp_guard.defense.config import PRESETS, GraspConfig, config_for
from grasp_guard.errors import ConfigError


def test_defaults_and_presets_are_valid() -> None:
    GraspConfig()
    assert set(PRESETS) == {"fast", "balanced", "strong"}
    assert PRESETS["fast"].steps < PRESETS["balanced"].steps < PRESETS["strong"].steps


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("eps", 0.0, "in (0, 1]"),
        ("eps", 1.5, "in (0, 1]"),
        ("eps", float("nan"), "finite"),
        ("alpha", 0.5, "in (0, eps="),
        ("alpha", 0.0, "in (0, eps="),
        ("steps", 0, "≥ 1"),
        ("steps", 2.5, "an int"),
        ("steps", True, "an int"),
        ("lambda_ssim", -0.1, "≥ 0"),
        ("lambda_lf", -1.0, "≥ 0"),
        ("lf_operator", "wavelet", "one of"),
        ("lf_sigma", 0.0, "in (0, 16]"),
        ("lf_levels", 0, "in 1..5"),
        ("lf_band", 1.5, "in (0, 1]"),
        ("smoothing", "during", "one of"),
        ("smooth_kernel", 4, "odd"),
        ("smooth_kernel", 23, "odd"),
        ("smooth_sigma", 0.0, "> 0"),
        ("projection", 1, "a bool"),
        ("step_rule", "momentum", "one of"),
        ("init", "gaussian", "one of"),
        ("init_scale", 0.0, "in (0, 1]"),
        ("check_every", 0, "≥ 1"),
        ("success_threshold", 0.0, "> 0"),
        ("success_metric", "l2", "one of"),
        ("margin", 0.9, "≥ 1"),
        ("psnr_floor", 120.0, "None or in (0, 100)"),
        ("ssim_floor", 1.1, "None or in (0, 1]"),
        ("seed", -1, "≥ 0"),
    ],
)
def test_invalid_values_name_the_field_expected_and_actual(field: str, value: Any,
                                                           expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        GraspConfig(**{field: value})
    message = str(info.value)
    assert f"GraspConfig.{field}" in message
    assert expected in message
    assert repr(value) in message


def test_a_quality_floor_needs_a_visual_loss() -> None:
    with pytest.raises(ConfigError, match="quality floor"):
        GraspConfig(lambda_ssim=0.0, lambda_lf=0.0, psnr_floor=40.0)
    GraspConfig(lambda_ssim=0.0, lambda_lf=0.0, psnr_floor=None, ssim_floor=None)


def test_budget_is_the_psnr_when_set() -> None:
    config = GraspConfig(psnr_budget=40.0)
    assert config.budget == pytest.approx(0.01)
    assert config.with_budget(0.005).psnr_budget == pytest.approx(46.0206, abs=1e-3)
    linf = GraspConfig(psnr_budget=None, eps=8 / 255, alpha=1 / 255)
    assert linf.with_budget(4 / 255).alpha == pytest.approx(0.5 / 255)


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        GraspConfig().eps = 0.1  # type: ignore[misc]


def test_config_for_applies_overrides_and_validates() -> None:
    cfg = config_for("fast", steps=7, lf_operator="dct")
    assert cfg.steps == 7 and cfg.lf_operator == "dct"
    assert cfg.eps == PRESETS["fast"].eps
    with pytest.raises(ConfigError, match="preset"):
        config_for("extreme")
    with pytest.raises(ConfigError, match="unknown GraspConfig field"):
        config_for("fast", epsilon=0.1)
    with pytest.raises(ConfigError, match="steps"):
        config_for("fast", steps=0)


def test_with_budget_scales_the_step_with_the_budget() -> None:
    cfg = GraspConfig(eps=8 / 255, alpha=1 / 255, psnr_budget=None)
    scaled = cfg.with_budget(4 / 255)
    assert scaled.eps == pytest.approx(4 / 255)
    assert scaled.alpha == pytest.approx(0.5 / 255)
    assert dataclasses.replace(scaled, eps=cfg.eps, alpha=cfg.alpha) == cfg
    with pytest.raises(ConfigError, match="eps"):
        cfg.with_budget(0.0)


def test_step_schedules() -> None:
    constant = GraspConfig(alpha=0.01, steps=11)
    assert [constant.step_size(t) for t in (1, 6, 11)] == [0.01] * 3
    cosine = constant.replace(step_schedule="cosine")
    sizes = [cosine.step_size(t) for t in range(1, 12)]
    assert sizes[0] == pytest.approx(0.01) and sizes[-1] == pytest.approx(0.001)
    assert sizes[5] == pytest.approx(0.0055) and sizes == sorted(sizes, reverse=True)
    with pytest.raises(ConfigError, match="step_schedule"):
        constant.replace(step_schedule="linear")
