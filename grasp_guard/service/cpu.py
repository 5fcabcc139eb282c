"""The CPU stages of a request (decode + detect + crop, paste + encode + measure), off the loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from grasp_sdk.options import ProtectOptions

from grasp_guard.faces.detect import FaceDetector, HaarDetector
from grasp_guard.pipeline import CropOutcome, Engine, PreparedImage, finish, prepare


class CpuStage:
    """A small thread pool for the blocking image work, with one face detector per thread.

    OpenCV's cascade classifier is not documented as thread-safe, and loading it costs more
    than a small image's detection, so each pool thread keeps its own.

    Args:
        threads: the pool's size.
        max_pixels: the decompression-bomb limit handed to the decoder.
    """

    def __init__(self, threads: int, max_pixels: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grasp-cpu")
        self._local = threading.local()
        self._max_pixels = max_pixels

    def _detector(self) -> FaceDetector:
        detector: FaceDetector | None = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = HaarDetector()
        return detector

    def _prepare(self, data: bytes, options: ProtectOptions) -> PreparedImage:
        return prepare(data, options, detector=self._detector(), max_pixels=self._max_pixels)

    async def prepare(self, data: bytes, options: ProtectOptions) -> PreparedImage:
        """Decode, find faces and cut crops; raises the engine's input errors."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._prepare, data, options)

    async def finish(self, prepared: PreparedImage, outcomes: Sequence[CropOutcome],
                     engine: Engine) -> tuple[bytes, dict[str, Any]]:
        """Paste the protected crops back, re-encode and measure; raises SizeBudgetError."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, finish, prepared, outcomes, engine)

    async def close(self) -> None:
        """Stop the pool once its running jobs are done."""
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
