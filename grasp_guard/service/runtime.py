"""What a running service holds: the engine on its device thread, the worker, the admission.

The models load and warm up in the background so that ``/healthz`` answers at once and
``/readyz`` turns 200 when they are ready. Requests are admitted up to ``queue_size`` at a
time (the rest get 429 at once) and refused while loading or shutting down (503); the worker
then queues a request's crops only when they can be optimised before its deadline (429
with a computed Retry-After otherwise), by the batch times it measures in :attr:`times`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator

from grasp_guard.errors import QueueFullError, ServiceUnavailableError
from grasp_guard.pipeline import Engine
from grasp_guard.service.admission import ServiceTimes
from grasp_guard.service.metrics import ServiceMetrics
from grasp_guard.service.settings import Settings
from grasp_guard.service.worker import BatchWorker, DeviceThread

logger = logging.getLogger(__name__)

EngineFactory = Callable[[Settings], Engine]


def load_engine(settings: Settings) -> Engine:
    """The default engine factory: ``settings.models`` on ``settings.device``."""
    return Engine.create(settings.models, settings.device)


class Runtime:
    """The engine, the device thread and the batching worker of one app, and its admission.

    Args:
        settings: the service settings.
        metrics: the app's metrics.
        engine_factory: builds the engine (blocking; runs on the device thread).
    """

    def __init__(self, settings: Settings, metrics: ServiceMetrics,
                 engine_factory: EngineFactory = load_engine) -> None:
        self.settings = settings
        self.metrics = metrics
        self.device = DeviceThread()
        self.times = ServiceTimes(settings.admission_prior_s, settings.admission_retime_s)
        self.engine: Engine | None = None
        self.worker: BatchWorker | None = None
        self.error: str | None = None
        self.draining = False
        self.in_flight = 0
        self._factory = engine_factory
        self._quiet = asyncio.Event()
        self._quiet.set()

    async def start(self) -> None:
        """Load and warm up the models on the device thread, then start the worker.

        A failure is logged and kept in :attr:`error` (``/readyz`` shows it); the service
        then stays up, unready, so that an operator can read why.
        """
        try:
            engine = await self.device.call(self._factory, self.settings)
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

    def not_ready_reason(self) -> str | None:
        """Why the service cannot take a request now, or None when it can."""
        if self.draining:
            return "the service is shutting down"
        if self.worker is None:
            return self.error or "the models are loading"
        if not self.worker.running:
            return "the optimisation worker has stopped"
        if self.in_flight >= self.settings.queue_size:
            return f"the queue is full ({self.in_flight} requests)"
        return None

    @contextlib.contextmanager
    def admit(self) -> Iterator[tuple[Engine, BatchWorker]]:
        """Hold one of the ``queue_size`` request slots for the block.

        Raises:
            ServiceUnavailableError: loading, failed, or shutting down.
            QueueFullError: every slot is taken.
        """
        if self.draining or self.engine is None or self.worker is None:
            raise ServiceUnavailableError(self.not_ready_reason() or "not ready")
        if self.in_flight >= self.settings.queue_size:
            self.metrics.refused.labels("queue_full").inc()
            raise QueueFullError(f"the queue is full ({self.in_flight} requests); retry later")
        self.in_flight += 1
        self._quiet.clear()
        self.metrics.queue_depth.set(self.in_flight)
        try:
            yield self.engine, self.worker
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

    async def close(self) -> None:
        """Stop the worker (failing what still waits) and the device thread."""
        self.draining = True
        if self.worker is not None:
            await self.worker.stop()
        await self.device.close()
