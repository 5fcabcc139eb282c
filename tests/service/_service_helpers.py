"""Helpers of the service tests: image encoding, the spy engine, readiness polling."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
import torch
from aiohttp.test_utils import TestClient
from PIL import Image

from grasp_guard.models.editor import Editor
from grasp_guard.pipeline import CropOutcome, CropTask, Engine

FACE_SIDE = 192  # the Haar detector finds the astronaut's face from about this size
WAIT_S = 20.0


def encode(rgb: np.ndarray, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **params)
    return buf.getvalue()


class SpyEngine(Engine):
    """The real engine, capped at one GRASP step so tests stay fast, recording each batch.

    ``gate`` holds :meth:`optimise` (clear it to block the worker), ``warm_gate`` holds
    :meth:`warm_up`; ``entered`` is set once a batch has reached the engine.
    """

    def __init__(self, editors: Sequence[Editor]) -> None:
        super().__init__(editors, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        self.batches: list[list[Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.warm_gate = threading.Event()
        self.warm_gate.set()
        self.warmed = False

    def warm_up(self) -> None:
        # The real warm-up costs seconds on a busy CPU; the subprocess test runs it.
        if not self.warm_gate.wait(WAIT_S):
            raise TimeoutError("warm_gate was never opened")
        self.warmed = True

    def optimise(self, tasks: Sequence[CropTask], max_steps: int | None = None) -> list[CropOutcome]:
        self.batches.append([t.group_key for t in tasks])
        self.entered.set()
        if not self.gate.wait(WAIT_S):
            raise TimeoutError("gate was never opened")
        return super().optimise(tasks, max_steps=1)


async def wait_ready(client: TestClient, headers: dict[str, str] | None = None) -> None:
    """Poll /readyz until the models are loaded and warm."""
    for _ in range(int(WAIT_S / 0.02)):
        resp = await client.get("/readyz", headers=headers)
        if resp.status == 200:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the service never became ready")


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, WAIT_S), "timed out waiting for the engine"


ServiceFactory = Callable[..., Awaitable[TestClient]]
