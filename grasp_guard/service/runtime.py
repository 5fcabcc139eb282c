"""What a running service holds: the request slots, and the engine that optimises crops.

:class:`Runtime` admits requests up to ``queue_size`` at a time (the rest get 429 at once),
and before that lets up to ``upload_slots`` bodies arrive (so a slow upload holds no request
slot), refuses them while loading or shutting down (503) and drains on shutdown; a backend fills in
how admitted crops become a protected image. :class:`LocalRuntime` is the default backend:
the engine on its device thread in this process, its models loaded and warmed up in the
background so that ``/healthz`` answers at once and ``/readyz`` turns 200 when they are
ready; its batching worker queues a request's crops only when they can be optimised before
its deadline (429 with a computed Retry-After otherwise), by the batch times it measures in
:attr:`LocalRuntime.times`. The Ray Serve backend lives in :mod:`grasp_guard.service.ray_backend`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

from grasp_guard.errors import DeadlineExceededError, QueueFullError, ServiceUnavailableError
from grasp_guard.pipeline import CropOutcome, Engine, PreparedImage, record_outcomes
from grasp_guard.service.admission import ServiceTimes, optimise_by
from grasp_guard.service.cpu import CpuStage
from grasp_guard.service.metrics import ServiceMetrics
from grasp_guard.service.settings import Settings
from grasp_guard.service.worker import BatchWorker, DeviceThread, Ticket

logger = logging.getLogger(__name__)

EngineFactory = Callable[[Settings], Engine]
#: A protected image, its full report, and the request's seconds spent in the backend.
Protected = tuple[bytes, dict[str, Any], dict[str, float]]


def load_engine(settings: Settings) -> Engine:
    """The default engine factory: ``settings.models`` on ``settings.device``."""
    return Engine.create(settings.models, settings.device)


def deadline_error(deadline_s: float, started: bool) -> DeadlineExceededError:
    """The error of a request that ran out of its deadline (503 queued, 504 under way). Work
    under way is not stopped part-way (a batch on the device, a photo's decode or finish in
    a thread): its answer is dropped, the work may run on a while."""
    if started:
        what = ("while being protected; its answer is dropped (work under way finishes in the "
                "background)")
    else:
        what = "before its optimisation began; its work was dropped"
    return DeadlineExceededError(f"the request ran out of its {deadline_s:g} s deadline {what}",
                                 started=started)


class Runtime(abc.ABC):
    """The request slots of one app, and the backend that protects admitted images.

    Args:
        settings: the service settings.
        metrics: the app's metrics.
        engine_factory: builds the engine (blocking), wherever the backend runs it.
    """

    def __init__(self, settings: Settings, metrics: ServiceMetrics,
                 engine_factory: EngineFactory = load_engine) -> None:
        self.settings = settings
        self.metrics = metrics
        self.engine_factory = engine_factory
        self.error: str | None = None
        self.draining = False
        self.in_flight = 0
        self.arriving = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @abc.abstractmethod
    async def start(self) -> None:
        """Get the backend ready; a failure is kept in :attr:`error`, never raised."""

    @abc.abstractmethod
    def unavailable_reason(self) -> str | None:
        """Why the backend cannot optimise now (loading, failed, stopped), or None."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """What ``/readyz`` shows of a ready backend (its device, its surrogates)."""

    @abc.abstractmethod
    async def protect(self, prepared: PreparedImage, cpu: CpuStage, start: float) -> Protected:
        """Optimise an admitted image's crops and finish it, by its deadline.

        Args:
            prepared: the decoded image with at least one crop.
            cpu: the app's CPU stage (for the paste-back and encode where they run here).
            start: when the request arrived (the loop's clock); its deadline runs from then.

        Raises:
            QueueFullError: it would not finish in time (429, with when to retry).
            DeadlineExceededError: it ran out of its deadline anyway.
            ServiceUnavailableError: the backend cannot take it now.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop the backend, failing what still waits."""

    def not_ready_reason(self) -> str | None:
        """Why the service cannot take a request now, or None when it can."""
        if self.draining:
            return "the service is shutting down"
        reason = self.unavailable_reason()
        if reason is not None:
            return reason
        if self.in_flight >= self.settings.queue_size:
            return f"the queue is full ({self.in_flight} requests)"
        return None

    def check_room(self) -> None:
        """Raise now what :meth:`admit` would: a request the queue cannot take is refused
        before its body is read.

        Raises:
            ServiceUnavailableError: loading, failed, or shutting down.
            QueueFullError: every request slot is taken.
        """
        reason = "the service is shutting down" if self.draining else self.unavailable_reason()
        if reason is not None:
            raise ServiceUnavailableError(reason)
        if self.in_flight >= self.settings.queue_size:
            self.metrics.refused.labels("queue_full").inc()
            raise QueueFullError(f"the queue is full ({self.in_flight} requests); retry later")

    @contextlib.contextmanager
    def receive(self) -> Iterator[None]:
        """Hold one of the ``upload_slots`` while an upload's body arrives.

        Raises:
            QueueFullError: every upload slot is taken.
        """
        if self.arriving >= self.settings.upload_slots:
            self.metrics.refused.labels("uploads_full").inc()
            raise QueueFullError(f"{self.arriving} uploads are arriving; retry later")
        self.arriving += 1
        self.metrics.uploads_arriving.set(self.arriving)
        try:
            yield
        finally:
            self.arriving -= 1
            self.metrics.uploads_arriving.set(self.arriving)

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one of the ``queue_size`` request slots for the block.

        Raises:
            ServiceUnavailableError: loading, failed, or shutting down.
            QueueFullError: every slot is taken.
        """
        self.check_room()
        self.in_flight += 1
        self._quiet.clear()
        self.metrics.queue_depth.set(self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1
            self.metrics.queue_depth.set(self.in_flight)
            if self.in_flight == 0:
                self._quiet.set()

    async def drain(self, timeout: float) -> None:
        """Stop admitting, then wait up to ``timeout`` s for the admitted requests to finish."""
        self.draining = True
        try:
            async with asyncio.timeout(timeout):
                await self._quiet.wait()
        except TimeoutError:
            logger.warning("%d requests still in flight after %g s", self.in_flight, timeout)


class LocalRuntime(Runtime):
    """The engine, its device thread and the batching worker, in this process; the engine
    factory runs on the device thread."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics,
                 engine_factory: EngineFactory = load_engine) -> None:
        super().__init__(settings, metrics, engine_factory)
        self.device = DeviceThread()
        self.times = ServiceTimes(settings.admission_prior_s, settings.admission_retime_s)
        self.engine: Engine | None = None
        self.worker: BatchWorker | None = None

    async def start(self) -> None:
        """Load and warm up the models on the device thread, then start the worker.

        A failure is logged and kept in :attr:`error` (``/readyz`` shows it); the service
        then stays up, unready, so that an operator can read why.
        """
        try:
            engine = await self.device.call(self.engine_factory, self.settings)
            await self.device.call(engine.warm_up)
        except Exception as exc:
            self.error = f"the models failed to load: {type(exc).__name__}: {exc}"
            logger.exception("the models failed to load")
            return
        worker = BatchWorker(engine, self.device, self.metrics, self.times,
                             max_batch=self.settings.max_batch, gather_s=self.settings.gather_s)
        worker.start()
        self.engine, self.worker = engine, worker
        logger.info("ready: %s on %s", ", ".join(engine.labels), engine.device)

    def unavailable_reason(self) -> str | None:
        if self.worker is None:
            return self.error or "the models are loading"
        if not self.worker.running:
            return "the optimisation worker has stopped"
        return None

    def describe(self) -> dict[str, Any]:
        if self.engine is None:
            raise ServiceUnavailableError(self.unavailable_reason() or "not ready")
        return {"device": str(self.engine.device), "surrogates": self.engine.labels}

    async def protect(self, prepared: PreparedImage, cpu: CpuStage, start: float) -> Protected:
        """Queue the crops with the worker, pass after pass
        (:meth:`~grasp_guard.pipeline.PreparedImage.passes`: the stages, and a group photo's
        first stage again), and finish the image on ``cpu``.

        The worker takes the image only if all its crops can be optimised early enough to
        leave the last CPU stage its expected time before the deadline, with some headroom,
        for a full batch's requests finishing ``cpu_threads`` at a time
        (:func:`~grasp_guard.service.admission.optimise_by`; QueueFullError otherwise); its
        later passes, already admitted, are not refused. A crop a group photo runs again
        counts there as its first run, an upper bound, and that pass is kept only if done by
        then: else the image is finished with the outcomes it has.
        """
        engine, worker = self.engine, self.worker
        if engine is None or worker is None:
            raise ServiceUnavailableError(self.unavailable_reason() or "not ready")
        settings = self.settings
        rounds = math.ceil(settings.max_batch / settings.cpu_threads)
        finish_by = optimise_by(start, settings.deadline_s, self.times, rounds)
        outcomes: dict[int, CropOutcome] = {}
        tickets: list[Ticket] = []
        try:
            async with asyncio.timeout_at(start + settings.deadline_s):
                plan = prepared.passes()
                every_pass = [prepared.tasks[i] for indices, _ in plan for i in indices]
                for indices, steps in plan:
                    if tickets:
                        tasks = await cpu.in_context(prepared, indices, outcomes, steps)
                        tickets.append(worker.submit(tasks, finish_by, admitting=()))
                    else:
                        tasks = [prepared.tasks[i] for i in indices]
                        tickets.append(worker.submit(tasks, finish_by, admitting=every_pass))
                    if steps is None:
                        record_outcomes(outcomes, indices, await tickets[-1].future)
                        continue
                    with contextlib.suppress(TimeoutError):  # cancelled: its crops leave
                        async with asyncio.timeout_at(finish_by):
                            record_outcomes(outcomes, indices, await tickets[-1].future)
                out, report, finish_s = await cpu.finish(
                    prepared, [outcomes[i] for i in range(len(prepared.tasks))], engine)
        except TimeoutError as exc:
            raise deadline_error(settings.deadline_s, any(t.started for t in tickets)) from exc
        self.times.observe_finish(finish_s)
        # expected: until optimised, as admission expected.
        return out, report, {"queue": sum(t.queue_wait for t in tickets),
                             "expected": tickets[0].expected_s}

    async def close(self) -> None:
        """Stop the worker (failing what still waits) and the device thread."""
        self.draining = True
        if self.worker is not None:
            await self.worker.stop()
        await self.device.close()
