"""The batching worker: the one owner of the device, optimising face crops across requests.

Requests submit their crops; the worker groups waiting crops by ``CropTask.group_key``
(crop size, preset, site transform), waits at most ``gather_s`` after the oldest crop
arrived for others of its group, and optimises up to ``max_batch`` of them in one
``Engine.optimise`` call on its own thread (torch releases the GIL, the event loop goes on).
Crops whose request gave up (deadline, disconnect) are dropped before they reach the device.
A request is queued only when its crops are expected optimised before its deadline
(:mod:`grasp_guard.service.admission`); each batch's timing teaches that expectation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from grasp_guard.errors import QueueFullError, ServiceUnavailableError
from grasp_guard.pipeline import CropOutcome, CropTask, Engine
from grasp_guard.service.admission import Crop, ServiceTimes, busy_until, decide, schedule
from grasp_guard.service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)

T = TypeVar("T")


class DeviceThread:
    """The single thread that runs everything touching the device (load, warm-up, batches)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="grasp-device")

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the device thread and wait for it without blocking the loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def close(self) -> None:
        """Wait for the running call, if any, then stop the thread."""
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)


@dataclass(eq=False)
class Ticket:
    """One request's crops in the worker: await :attr:`future` for their outcomes, in order.

    Attributes:
        finish_by: when (the loop's clock) its crops must be optimised to meet its deadline.
        started: whether any of its crops has entered an optimisation batch.
        queue_wait: the longest a crop of it waited for its batch, in seconds.
        expected_s: how long it was expected to wait for its outcomes when admitted.
    """

    future: asyncio.Future[list[CropOutcome]]
    size: int
    finish_by: float = math.inf
    started: bool = False
    expected_s: float = 0.0
    queue_wait: float = 0.0
    _outcomes: dict[int, CropOutcome] = field(default_factory=dict)

    def deliver(self, index: int, outcome: CropOutcome) -> None:
        self._outcomes[index] = outcome
        if len(self._outcomes) == self.size and not self.future.done():
            self.future.set_result([self._outcomes[i] for i in range(self.size)])

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


@dataclass(eq=False)
class _Item:
    ticket: Ticket
    index: int
    task: CropTask
    enqueued: float


class BatchWorker:
    """Optimises waiting face crops in batches, across requests, on the device thread.

    Args:
        engine: the loaded engine.
        device: the thread that owns the engine's device.
        metrics: where batch sizes, waits, times and admission decisions are recorded.
        times: the batch time estimates admission decides with; each batch updates them.
        max_batch: the most crops per batch.
        gather_s: how long the oldest waiting crop waits for others to fill its batch.
    """

    def __init__(self, engine: Engine, device: DeviceThread, metrics: ServiceMetrics,
                 times: ServiceTimes, *, max_batch: int, gather_s: float) -> None:
        self._engine = engine
        self._device = device
        self._metrics = metrics
        self._times = times
        self._max_batch = max_batch
        self._gather_s = gather_s
        self._pending: dict[Hashable, list[_Item]] = {}
        self._running: list[_Item] = []
        self._running_since: float | None = None
        self._running_expected = 0.0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the worker's loop is running."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the worker's loop (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="grasp-batch-worker")

    def submit(self, tasks: Sequence[CropTask], finish_by: float = math.inf, *,
               admitting: Sequence[CropTask] | None = None) -> Ticket:
        """Queue one request's crops if they are expected optimised by ``finish_by``.

        Cancelling the ticket's future drops the crops not started.

        Args:
            tasks: the request's crops (at least one).
            finish_by: when (the loop's clock) they must be optimised.
            admitting: the crops the admission decides on, ``tasks`` when ``None``: a
                request optimised in passes (``PreparedImage.passes``) is decided on all
                its crops with its first pass, and its later passes (``()``) are taken.

        Raises:
            ServiceUnavailableError: the worker is not running.
            QueueFullError: they would not be optimised in time, or would make an admitted
                request late; its ``retry_after_s`` says when they would fit.
        """
        if not self.running:
            raise ServiceUnavailableError("the optimisation worker is not running")
        if not tasks:
            raise ValueError("a request with no crops has nothing to optimise")
        loop = asyncio.get_running_loop()
        now = loop.time()
        ticket = Ticket(loop.create_future(), len(tasks), finish_by)
        if admitting is None or admitting:
            self._admit(ticket, tasks if admitting is None else admitting, now)
        for index, task in enumerate(tasks):
            self._pending.setdefault(task.group_key, []).append(_Item(ticket, index, task, now))
        self._update_pending()
        # a request that gives up (deadline, disconnect) leaves the gauges at once; one
        # delivered leaves them when its batch ends (_run)
        ticket.future.add_done_callback(lambda f: self._update_pending() if f.cancelled() else None)
        self._wakeup.set()
        return ticket

    def _waiting(self) -> dict[Hashable, list[Crop]]:
        """The crops waiting for the device whose request still waits, by group."""
        return {key: [Crop(i.ticket, key, i.enqueued) for i in items
                      if not i.ticket.future.done()]
                for key, items in self._pending.items()}

    def _admit(self, ticket: Ticket, tasks: Sequence[CropTask], now: float) -> None:
        """Decide on ``ticket``; raise QueueFullError when it is refused."""
        waiting = self._waiting()
        finish_by: dict[Hashable, float] = {
            item.ticket: item.ticket.finish_by for items in self._pending.values() for item in items}
        finish_by[ticket] = ticket.finish_by
        decision = decide(waiting, [Crop(ticket, t.group_key, now) for t in tasks], finish_by,
                          self._times, now=now, free_at=self._free_at(now),
                          max_batch=self._max_batch, gather_s=self._gather_s)
        self._metrics.expected_seconds.observe(decision.expected_s)
        if not decision.admit:
            self._metrics.refused.labels("deadline").inc()
            logger.info("refused a request of %d crops: %s", len(tasks), decision.reason)
            raise QueueFullError(f"the service cannot finish this request in time: "
                                 f"{decision.reason}; retry in {decision.retry_after_s} s",
                                 retry_after_s=decision.retry_after_s)
        ticket.expected_s = decision.expected_s
        self._metrics.admitted.inc()

    def _free_at(self, now: float) -> float | None:
        """When the running batch is expected done; None when none runs."""
        if self._running_since is None:
            return None
        return busy_until(self._running_since, self._running_expected, now)

    def backlog_seconds(self) -> float:
        """Expected seconds until the device has optimised every crop now waiting."""
        now = asyncio.get_running_loop().time()
        free_at = self._free_at(now)
        start = now if free_at is None else max(now, free_at)
        done = schedule(self._waiting(), self._times, start=start, max_batch=self._max_batch,
                        gather_s=self._gather_s)
        return max(done.values(), default=start) - now

    async def stop(self) -> None:
        """Cancel the loop and await it; requests still waiting fail as unavailable."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        error = ServiceUnavailableError("the service is shutting down")
        for item in [*self._running, *(i for items in self._pending.values() for i in items)]:
            item.ticket.fail(error)
        self._running = []
        self._pending.clear()
        self._update_pending()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._running = await self._next_batch()
            key = self._running[0].task.group_key
            self._running_since = loop.time()
            self._running_expected = self._times.batch_seconds(key, len(self._running))
            self._update_pending()
            await self._optimise(self._running)
            self._running = []
            self._running_since = None
            self._update_pending()

    def _prune(self) -> None:
        """Drop crops whose request gave up."""
        for key in list(self._pending):
            live = [item for item in self._pending[key] if not item.ticket.future.done()]
            if live:
                self._pending[key] = live
            else:
                del self._pending[key]
        self._update_pending()

    def _update_pending(self) -> None:
        self._metrics.crops_pending.set(sum(map(len, self._waiting().values())))
        self._metrics.backlog_seconds.set(self.backlog_seconds())

    async def _next_batch(self) -> list[_Item]:
        loop = asyncio.get_running_loop()
        while True:
            self._prune()
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            key = min(self._pending, key=lambda k: self._pending[k][0].enqueued)
            items = self._pending[key]
            remaining = items[0].enqueued + self._gather_s - loop.time()
            if len(items) >= self._max_batch or remaining <= 0:
                batch, rest = items[:self._max_batch], items[self._max_batch:]
                if rest:
                    self._pending[key] = rest
                else:
                    del self._pending[key]
                return batch
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()

    async def _optimise(self, batch: list[_Item]) -> None:
        now = asyncio.get_running_loop().time()
        for item in batch:
            wait = now - item.enqueued
            item.ticket.started = True
            item.ticket.queue_wait = max(item.ticket.queue_wait, wait)
            self._metrics.queue_wait.observe(wait)
        self._metrics.batch_size.observe(len(batch))
        start = time.perf_counter()
        try:
            outcomes = await self._device.call(self._engine.optimise, [i.task for i in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(batch)} crops but {len(outcomes)} outcomes")
        except Exception as exc:  # one failed batch fails its requests, never the worker
            logger.exception("optimising a batch of %d crops failed", len(batch))
            error = RuntimeError(f"the optimisation failed: {type(exc).__name__}: {exc}")
            for item in batch:
                item.ticket.fail(error)
            return
        finally:
            self._metrics.optimise_seconds.observe(time.perf_counter() - start)
        seconds = time.perf_counter() - start
        self._record(batch[0].task, len(batch), seconds)
        logger.debug("optimised %d crops in %.3f s", len(batch), seconds)
        for item, outcome in zip(batch, outcomes):
            item.ticket.deliver(item.index, outcome)

    def _record(self, task: CropTask, size: int, seconds: float) -> None:
        """Teach the estimate a batch's timing (a failed batch teaches nothing)."""
        key = task.group_key
        self._times.observe(key, size, seconds, at=asyncio.get_running_loop().time())
        if task.steps is None:  # the gauge is of a preset's full run
            per_crop = self._times.batch_seconds(key, self._max_batch) / self._max_batch
            self._metrics.crop_seconds.labels(str(task.crop.shape[0]), task.preset).set(per_crop)
