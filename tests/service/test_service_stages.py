"""A group photo whose crops of different sizes overlap goes through the service in stages."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from _service_helpers import WAIT_S, SpyEngine, encode
from grasp_sdk.options import ProtectOptions

from grasp_guard import pipeline
from grasp_guard.faces.detect import FaceBox, KnownBoxes
from grasp_guard.service import Settings
from grasp_guard.service.cpu import CpuStage
from grasp_guard.service.metrics import ServiceMetrics
from grasp_guard.service.runtime import LocalRuntime

PRIOR_S = 0.5


async def _through_service(spy: SpyEngine, monkeypatch: pytest.MonkeyPatch, preset: str, *,
                           prior_s: float = PRIOR_S, timed_s: float | None = None,
                           second_pass_held: bool = False
                           ) -> tuple[pipeline.PreparedImage, list[list[pipeline.CropTask]],
                                      dict[str, Any], dict[str, float]]:
    """A large face whose crop covers a small one's, protected by the service; the batches
    the engine was handed. ``timed_s``: the crops' groups already timed at that (their warm
    twins not); ``second_pass_held``: the second pass does not end before the image does."""
    rgb = (np.random.default_rng(5).random((400, 600, 3)) * 120 + 60).astype(np.uint8)
    prepared = pipeline.prepare(encode(rgb, "PNG"), ProtectOptions(preset=preset),
                                detector=KnownBoxes([FaceBox(120, 100, 120, 120),
                                                     FaceBox(300, 150, 40, 40)]))
    assert prepared.stages() == [[1], [0]]
    handed: list[list[pipeline.CropTask]] = []
    release = threading.Event()
    real = spy.optimise

    def recording(tasks: Sequence[pipeline.CropTask], max_steps: int | None = None
                  ) -> list[pipeline.CropOutcome]:
        handed.append(list(tasks))
        if second_pass_held and tasks[0].steps is not None:
            release.wait(WAIT_S)
        return real(tasks, max_steps)

    monkeypatch.setattr(spy, "optimise", recording)
    runtime = LocalRuntime(Settings(gather_ms=5.0, admission_prior_s=prior_s), ServiceMetrics(),
                           engine_factory=lambda _: spy)
    if second_pass_held:  # crops due 3 s after the start
        monkeypatch.setattr("grasp_guard.service.runtime.optimise_by",
                            lambda start, *_: start + 3.0)
    cpu = CpuStage(1, 10**8, "haar")
    await runtime.start()
    now = asyncio.get_running_loop().time()
    for task in prepared.tasks if timed_s is not None else ():
        runtime.times.observe(task.group_key, 1, timed_s, at=now)
    try:
        _, report, seconds = await runtime.protect(prepared, cpu, now)
    finally:
        release.set()
        await runtime.close()
        await cpu.close()
    return prepared, handed, report, seconds


async def test_a_later_stage_is_optimised_with_what_the_first_pasted(
        spy: SpyEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    prepared, handed, report, seconds = await _through_service(spy, monkeypatch, "fast")
    keys = [t.group_key for t in prepared.tasks]
    assert spy.batches == [[keys[1]], [keys[0]]]  # fast: no second pass
    (first,), (later,) = handed
    assert first.context is None and later.context is not None
    assert not np.array_equal(later.context, prepared.tasks[0].crop)
    assert report["protected"] and len(report["faces"]) == 2
    assert seconds["expected"] == pytest.approx(2 * PRIOR_S, abs=0.1)  # both crops, before any timing


async def test_the_first_stage_runs_again_in_the_later_stages_context(
        spy: SpyEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    _, handed, report, seconds = await _through_service(spy, monkeypatch, "balanced")
    (first,), (later,), (again,) = handed
    assert again.start is not None and again.steps == pipeline.REFINE_STEPS["balanced"] > 0
    assert again.context is not None  # the large face's paste
    assert again.group_key not in (first.group_key, later.group_key)
    small, large = report["faces"][1], report["faces"][0]
    assert small["iterations"] == 2 and large["iterations"] == 1  # the spy's one step a run
    assert seconds["expected"] == pytest.approx(3 * PRIOR_S, abs=0.1)  # admitted with its second pass


async def test_a_group_photo_is_admitted_when_only_its_second_pass_is_untimed(
        spy: SpyEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    # untimed, a crop is assumed to take 1000 s; the second pass's crops count as their first
    _, handed, report, seconds = await _through_service(spy, monkeypatch, "balanced",
                                                        prior_s=1000.0, timed_s=0.2)
    assert len(handed) == 3 and report["protected"]
    assert seconds["expected"] < 5


async def test_a_second_pass_not_done_in_time_leaves_the_first_outcomes(
        spy: SpyEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    _, handed, report, _ = await _through_service(spy, monkeypatch, "balanced",
                                                  second_pass_held=True)
    assert len(handed) == 3 and handed[2][0].steps is not None
    small, large = report["faces"][1], report["faces"][0]
    assert report["protected"] and small["iterations"] == 1 and large["iterations"] == 1
