"""The CPU stages of a request (decode + detect + crop, paste + encode + measure), off the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from grasp_sdk.options import ProtectOptions

from grasp_guard.faces.choose import default_detector, detector_named
from grasp_guard.faces.detect import FaceDetector
from grasp_guard.pipeline import CropOutcome, CropTask, Engine, PreparedImage, finish, prepare


class CpuStage:
    """Two small thread pools for the blocking image work, with one face detector per thread.

    New requests are prepared in one pool and admitted ones finished in the other, so that
    finishing a request never waits behind a burst of new arrivals being decoded: the
    admission's promise (its deadline) holds only if its last stage takes its usual time.
    OpenCV's detectors are not documented as thread-safe, and loading one costs more than a
    small image's detection, so each preparing thread keeps its own (the configured one).

    Args:
        threads: the size of each pool.
        max_pixels: the decompression-bomb limit handed to the decoder.
        detector, detector_model: the face detector by name and its model file
            (:func:`~grasp_guard.faces.choose.detector_named`).

    Raises:
        ConfigError: the detector named cannot be built (its model missing).
    """

    def __init__(self, threads: int, max_pixels: int, detector: str = "auto",
                 detector_model: str | None = None) -> None:
        self._prepare_pool = ThreadPoolExecutor(max_workers=threads,
                                                thread_name_prefix="grasp-prepare")
        self._finish_pool = ThreadPoolExecutor(max_workers=threads,
                                               thread_name_prefix="grasp-finish")
        self._local = threading.local()
        self._max_pixels = max_pixels
        self._detector_spec = (detector, Path(detector_model) if detector_model else None)
        self._detector()  # a missing model is a start-up error, not a failed request

    def _detector(self) -> FaceDetector:
        detector: FaceDetector | None = getattr(self._local, "detector", None)
        if detector is None:
            detector = (detector_named(*self._detector_spec)
                        or default_detector())
            self._local.detector = detector
        return detector

    def _prepare(self, data: bytes, options: ProtectOptions) -> PreparedImage:
        return prepare(data, options, detector=self._detector(), max_pixels=self._max_pixels)

    async def prepare(self, data: bytes, options: ProtectOptions) -> PreparedImage:
        """Decode, find faces and cut crops; raises the engine's input errors."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._prepare_pool, self._prepare, data, options)

    @staticmethod
    def _finish(prepared: PreparedImage, outcomes: Sequence[CropOutcome],
                engine: Engine) -> tuple[bytes, dict[str, Any], float]:
        start = time.perf_counter()
        out, report = finish(prepared, outcomes, engine)
        return out, report, time.perf_counter() - start

    async def finish(self, prepared: PreparedImage, outcomes: Sequence[CropOutcome],
                     engine: Engine) -> tuple[bytes, dict[str, Any], float]:
        """Paste the protected crops back, re-encode and measure; raises SizeBudgetError.

        Returns:
            the image, its report, and the seconds the work took on its thread (its wait
            for a free thread not counted).
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._finish_pool, self._finish, prepared, outcomes,
                                          engine)

    async def in_context(self, prepared: PreparedImage, indices: Sequence[int],
                         outcomes: Mapping[int, CropOutcome],
                         steps: int | None = None) -> list[CropTask]:
        """A later pass's crops with what the earlier passes paste into them
        (:meth:`~grasp_guard.pipeline.PreparedImage.in_context`), on a finishing thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._finish_pool, prepared.in_context, indices,
                                          outcomes, steps)

    async def close(self) -> None:
        """Stop the pools once their running jobs are done."""
        for pool in (self._prepare_pool, self._finish_pool):
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
