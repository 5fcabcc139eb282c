"""A group photo whose crops of different sizes overlap goes through the service in stages."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest
from _service_helpers import SpyEngine, encode
from grasp_sdk.options import ProtectOptions

from grasp_guard import pipeline
from grasp_guard.faces.detect import FaceBox, KnownBoxes
from grasp_guard.service import Settings
from grasp_guard.service.cpu import CpuStage
from grasp_guard.service.metrics import ServiceMetrics
from grasp_guard.service.runtime import LocalRuntime


async def test_a_later_stage_is_optimised_with_what_the_first_pasted(
        spy: SpyEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    rgb = (np.random.default_rng(5).random((400, 600, 3)) * 120 + 60).astype(np.uint8)
    prepared = pipeline.prepare(encode(rgb, "PNG"), ProtectOptions(preset="fast"),
                                detector=KnownBoxes([FaceBox(120, 100, 120, 120),
                                                 FaceBox(300, 150, 40, 40)]))
    assert prepared.stages() == [[1], [0]]
    handed: list[list[np.ndarray | None]] = []
    real = spy.optimise

    def recording(tasks: Sequence[pipeline.CropTask], max_steps: int | None = None
                  ) -> list[pipeline.CropOutcome]:
        handed.append([t.context for t in tasks])
        return real(tasks, max_steps)

    monkeypatch.setattr(spy, "optimise", recording)
    runtime = LocalRuntime(Settings(gather_ms=5.0, admission_prior_s=0.5), ServiceMetrics(),
                           engine_factory=lambda _: spy)
    cpu = CpuStage(1, 10**8, "haar")
    await runtime.start()
    try:
        _, report, seconds = await runtime.protect(prepared, cpu, asyncio.get_running_loop().time())
    finally:
        await runtime.close()
        await cpu.close()
    keys = [t.group_key for t in prepared.tasks]
    assert spy.batches == [[keys[1]], [keys[0]]]
    (first,), (later,) = handed
    assert first is None and later is not None and not np.array_equal(later, prepared.tasks[0].crop)
    assert report["protected"] and len(report["faces"]) == 2
    assert seconds["expected"] > 0
