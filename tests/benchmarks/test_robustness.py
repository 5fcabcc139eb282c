"""The robustness benchmark's mechanics on a tiny seeded editor, and its place in the quality JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_quality import tiny_editor

from grasp_guard.benchmarks import robustness
from grasp_guard.benchmarks.eval_set import eval_crops
from grasp_guard.benchmarks.report import attach_to_quality
from grasp_guard.cli import main
from grasp_guard.defense.config import config_for
from grasp_guard.defense.metrics import evaluate_defense


@pytest.fixture
def few_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(robustness, "config_for", lambda preset: config_for(preset, steps=6))


def test_processing_is_real_pillow_jpeg_and_resize() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    assert robustness.PROCESSING["resize0.5"](rgb).shape == (32, 24, 3)
    q95, q75 = robustness.PROCESSING["jpeg95"](rgb), robustness.PROCESSING["jpeg75"](rgb)
    err = [np.abs(q.astype(int) - rgb).mean() for q in (q95, q75)]
    assert 0 < err[0] < err[1]
    assert np.array_equal(robustness.PROCESSING["none"](rgb), rgb)


def test_dsr_after_no_processing_is_the_plain_dsr() -> None:
    editor, x = tiny_editor(), eval_crops(2, 32)
    adv = (x + 0.1 * (2 * (x > 0.5).float() - 1)).clamp(0, 1)
    adv = (adv * 255).round() / 255
    plain = evaluate_defense(editor, x, adv).dsr_cmua
    assert robustness.dsr_after(editor, x, adv, robustness.PROCESSING["none"]) == plain


@pytest.mark.usefixtures("few_steps")
def test_rows_cover_every_variant_at_the_crop_scale() -> None:
    rows = robustness.robustness_rows(tiny_editor(), n=2, levels=["psnr40"], calib_n=2, crop_scale=2)
    assert [r.method for r in rows] == ["grasp", "grasp+site-jpeg80", "grasp+site-jpeg75-85+resize0.5"]
    for r in rows:
        assert r.crop_side == 64 and r.n == 2 and set(r.dsr) == set(robustness.PROCESSING)
        assert all(0.0 <= v <= 1.0 for v in r.dsr.values())
        assert abs(r.psnr - 40.0) <= 0.5
    assert "| 64 px |" in robustness.markdown(rows)


@pytest.mark.usefixtures("few_steps")
def test_cli_writes_its_files_and_attaches_to_the_quality_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from grasp_guard.benchmarks import quality

    monkeypatch.setattr(quality, "load_bench_editor", lambda model, seeded=True: tiny_editor())
    (tmp_path / "quality.json").write_text(json.dumps({"rows": [], "meta": {}}))
    assert main(["bench", "robustness", "--n", "2", "--levels", "psnr40", "--crop-scales", "1",
                 "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "quality.json").read_text())
    assert len(doc["robustness"]["rows"]) == 3 and doc["robustness"]["rows"][0]["crop_side"] == 32
    assert "kept after jpeg80" in (tmp_path / "robustness.md").read_text()


def test_attach_needs_both_files(tmp_path: Path) -> None:
    assert attach_to_quality(tmp_path) is None
    (tmp_path / "robustness.json").write_text(json.dumps({"rows": [], "meta": {}}))
    assert attach_to_quality(tmp_path) is None
