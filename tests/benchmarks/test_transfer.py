"""The leave-one-out transfer benchmark's mechanics on tiny seeded editors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_quality import tiny_editor

from grasp_guard.benchmarks import report, transfer
from grasp_guard.benchmarks.eval_set import eval_crops
from grasp_guard.cli import main
from grasp_guard.defense.metrics import batch_psnr
from grasp_guard.models.editor import EditorInfo
from grasp_guard.models.stargan import CELEBA_ATTRIBUTES, StarGANEditor


def named(name: str, seeded: bool = False, reference: bool = False) -> StarGANEditor:
    editor = tiny_editor()
    editor.info = EditorInfo(name, 32, CELEBA_ATTRIBUTES, seeded=seeded, reference=reference)
    return editor


def test_each_judge_is_left_out_and_seeded_nets_never_judge() -> None:
    real, trained, seeded = named("real"), named("trained", reference=True), named("s", seeded=True)
    holdouts = transfer.leave_one_out([real, seeded, trained])
    assert [h.judge for h in holdouts] == [real, trained]
    for h in holdouts:
        assert h.judge not in h.ensemble and len(h.ensemble) == 2 and seeded in h.ensemble
    assert holdouts[0].name == "s+trained -> real"


def test_named_judges_only_and_never_a_seeded_one() -> None:
    real, trained, seeded = named("real"), named("trained", reference=True), named("s", seeded=True)
    [holdout] = transfer.leave_one_out([real, seeded, trained], only=["trained"])
    assert holdout.judge is trained and holdout.ensemble == (real, seeded)
    with pytest.raises(ValueError, match="not a judge of this pool: s"):
        transfer.leave_one_out([real, seeded, trained], only=["s"])


@pytest.mark.parametrize(("pool", "message"), [
    ([named("a", seeded=True), named("b", seeded=True)], "no net with real or trained"),
    ([named("alone")], "at least two"),
])
def test_pools_without_a_holdout_are_refused(pool: list[StarGANEditor], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        transfer.leave_one_out(pool)


@pytest.mark.parametrize("psnr", [38.0, 40.0])
def test_the_noise_floor_is_at_the_requested_psnr(psnr: float) -> None:
    x = eval_crops(3, 32)
    noisy = transfer.gaussian_noise(x, psnr)
    assert torch.equal(noisy, (noisy * 255).round() / 255)
    assert torch.allclose(batch_psnr(noisy, x), torch.full((3,), psnr, dtype=torch.float64),
                          atol=0.1)
    assert torch.equal(noisy, transfer.gaussian_noise(x, psnr))  # seeded
    row = transfer.noise_row(named("judge"), x, f"psnr{psnr:.0f}")
    assert row.method == "noise" and abs(row.psnr - psnr) <= 0.1 and 0 <= row.dsr_cmua <= 1


def test_unknown_levels_and_variants_are_refused() -> None:
    with pytest.raises(ValueError, match="psnr99, grasp-nope"):
        transfer.transfer_table([named("a"), named("b")], 2, 32, ["psnr99"], ["grasp-nope"])


def test_the_cli_writes_the_table_and_attaches_it_to_the_quality_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pool = [named("judge"), named("member", seeded=True)]
    monkeypatch.setattr(transfer, "load_pool", lambda names: pool)
    (tmp_path / "quality.json").write_text(json.dumps({"rows": [], "meta": {}}))
    assert main(["bench", "transfer", "--n", "2", "--resolution", "32", "--levels", "psnr40",
                 "--variants", "grasp", "--steps", "2", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "transfer.json").read_text())
    rows = doc["rows"]
    assert [(r["method"], r["model"]) for r in rows] == [("grasp", "member -> judge"),
                                                         ("white-box", "judge -> judge"),
                                                         ("noise", "-> judge")]
    assert all(r["n"] == 2 and r["level"] == "psnr40" for r in rows)
    assert abs(rows[0]["psnr"] - 40.0) <= 0.5 and abs(rows[1]["psnr"] - 40.0) <= 0.5
    assert abs(rows[2]["psnr"] - 40.0) <= 0.1
    assert "member (seeded)" in rows[0]["note"]
    md = (tmp_path / "transfer.md").read_text()
    assert "| member -> judge |" in md and "member: seeded" in md
    assert md.index("n = 2 per row") < md.index("| method |")  # what was measured, on top
    assert json.loads((tmp_path / "quality.json").read_text())["transfer"] == doc


def test_every_transfer_variant_is_a_method_of_the_loop() -> None:
    from grasp_guard.benchmarks.quality import methods

    assert set(transfer.VARIANTS) <= set(methods(2))
    assert {"grasp+diversity", "grasp+features"} <= set(transfer.VARIANTS)


def test_the_table_records_the_revision_its_run_started_at(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    revisions = iter(f"rev{i}" for i in range(100))
    monkeypatch.setattr(report, "meta", lambda *a, **kw: {"git": next(revisions), **kw})
    monkeypatch.setattr(transfer, "load_pool", lambda names: [named("judge"), named("m", seeded=True)])
    assert main(["bench", "transfer", "--n", "2", "--resolution", "32", "--levels", "psnr40",
                 "--variants", "grasp", "--steps", "2", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "transfer.json").read_text())["meta"]["git"] == "rev0"
