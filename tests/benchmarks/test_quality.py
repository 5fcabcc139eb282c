"""The matched-PSNR benchmark's mechanics on a tiny seeded editor."""

from __future__ import annotations

import json

import pytest
import torch

from grasp_guard.benchmarks import quality
from grasp_guard.benchmarks.eval_set import eval_crops
from grasp_guard.cli import main
from grasp_guard.models.editor import EditorInfo
from grasp_guard.models.stargan import CELEBA_ATTRIBUTES, Generator, StarGANEditor


def tiny_editor() -> StarGANEditor:
    torch.manual_seed(0)
    gen = Generator(conv_dim=8, c_dim=5, repeat_num=1)
    return StarGANEditor(gen, EditorInfo("tiny", 32, CELEBA_ATTRIBUTES, seeded=True)).eval().freeze()


def test_eval_crops_are_fixed_and_quantised() -> None:
    a, b = eval_crops(4, 32), eval_crops(4, 32)
    assert a.shape == (4, 3, 32, 32) and torch.equal(a, b)
    assert torch.equal(a, (a * 255).round() / 255)


@pytest.mark.parametrize(("name", "tolerance"), [
    ("grasp", quality.TOLERANCE_DB),
    # six sign steps saturate at ±ε, which 8-bit rounding turns into whole levels: PSNR
    # moves in jumps of up to ~1 dB there (long runs are not saturated and land closer)
    ("pgd", 1.0),
    ("pgd-l2+framing", quality.TOLERANCE_DB),
])
def test_calibration_lands_on_the_level(name: str, tolerance: float) -> None:
    method = quality.methods(steps=6)[name]
    x = eval_crops(3, 32)
    cal = quality.calibrate(method, x, [tiny_editor()], 38.0, max_trials=6)
    assert abs(cal.psnr - 38.0) <= tolerance


def test_quick_json_has_the_documented_schema(
    monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(quality, "load_bench_editor", lambda model, seeded=True: tiny_editor())
    few_steps = quality.methods(steps=6)
    monkeypatch.setattr(quality, "methods", lambda steps=None: few_steps)
    tiny = quality.Plan(standard={"reference": 2}, levels=(("grasp", "reference", "psnr40", 2),
                                                           ("pgd", "reference", "psnr40", 2)), calib_n=2)
    monkeypatch.setattr(quality, "QUICK", tiny)
    assert main(["bench", "quality", "--quick", "--json", "--out", str(tmp_path)]) == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    keys = {"method", "model", "level", "n", "psnr", "ssim", "dsr_cmua", "dsr_ruiz", "distortion",
            "iterations", "sec_per_face"}
    assert [r["level"] for r in doc["rows"]] == ["standard", "psnr40", "psnr40"]
    for row in doc["rows"]:
        assert keys <= set(row) and 0 <= row["dsr_cmua"] <= 1 and row["n"] == 2
    for row in doc["rows"][1:]:
        assert abs(row["psnr"] - 40.0) <= quality.TOLERANCE_DB
    assert (tmp_path / "quality-quick.md").read_text().count("| reference |") == 3
    assert "git" in doc["meta"]


def test_the_eval_set_is_real_faces_with_their_provenance() -> None:
    from grasp_guard.benchmarks.eval_set import FACE_SET_DIR, face_names

    names = face_names()
    assert len(names) >= 32 and len(set(names)) == len(names)
    assert sorted(names) == sorted(p.name for p in FACE_SET_DIR.glob("*.jpg"))
    assert "serengil/deepface" in (FACE_SET_DIR / "PROVENANCE.md").read_text()
    assert eval_crops(2, 32, offset=len(names) - 2).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="holds"):
        eval_crops(2, 32, offset=len(names) - 1)


def test_transfer_rows_protect_once_and_judge_by_each_net() -> None:
    source, judge = tiny_editor(), tiny_editor()
    judge.info = EditorInfo("judge", 32, CELEBA_ATTRIBUTES, seeded=True)
    rows = quality.transfer_rows(source, [judge], "psnr40", n=2, calib_n=2, steps=3)
    assert [r.model for r in rows] == ["tiny -> tiny", "tiny -> judge"]
    assert rows[0].psnr == rows[1].psnr and rows[0].n == 2
    # the same weights judge the same images alike
    assert rows[0].dsr_cmua == rows[1].dsr_cmua and rows[0].distortion == rows[1].distortion


def test_a_plan_runs_only_the_rows_named() -> None:
    plan = quality.RERUNS["real-cyclegan-levels-rest"]
    only = plan.only(["grasp:psnr38", "pgd:psnr42"])
    assert [(m, lv) for m, _, lv, _ in only.levels] == [("pgd", "psnr42"), ("grasp", "psnr38")]
    assert only.standard == {} and only.about == plan.about
    with pytest.raises(ValueError, match="grasp:psnr41"):
        plan.only(["grasp:psnr41"])


@pytest.mark.parametrize("name,plan", [*quality.PARTS.items(), *quality.RERUNS.items()])
def test_every_row_of_a_part_names_a_method_of_its_table(name: str, plan: quality.Plan) -> None:
    table = quality.methods(plan.steps)
    assert {m for m, *_ in plan.levels} <= table.keys()
    assert all(table[m].name == m for m, *_ in plan.levels)


def test_the_300_step_baselines_run_at_300_steps() -> None:
    table = quality.methods(40)
    assert "300 steps" in table["pgd-l2+framing-300-iters"].note
    assert "input_diversity" in table["pgd-l2+framing-300-iters"].note


def test_a_level_run_keeps_the_closer_of_its_two_tries() -> None:
    from types import SimpleNamespace

    from grasp_guard.benchmarks.quality import Method, tuned_run

    def stepped(x: torch.Tensor, _: object, budget: float) -> SimpleNamespace:
        # the calibration subset lands on 42 dB at once; the whole set at 43.22, and its
        # correction (a coarser 8-bit step) at 39.93 — as committed for PGD at psnr42
        if len(x) == 2:
            psnr = 42.0
        else:
            psnr = 43.22 if budget <= 0.01 else 39.93
        return SimpleNamespace(psnr=torch.full((len(x),), psnr))

    run = tuned_run(Method("stepped", stepped, initial_budget=0.01), [], torch.zeros(4, 3, 8, 8),
                    "psnr42", calib_n=2)
    assert float(run.result.psnr.mean()) == pytest.approx(43.22) and run.budget == 0.01
