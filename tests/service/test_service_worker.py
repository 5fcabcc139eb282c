"""The batching worker on a fake engine: grouping, windows, drops, failures, shutdown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np
import pytest

from grasp_guard.defense.transforms import SiteSpec
from grasp_guard.errors import QueueFullError, ServiceUnavailableError
from grasp_guard.pipeline import CropOutcome, CropTask
from grasp_guard.service.admission import ServiceTimes
from grasp_guard.service.metrics import ServiceMetrics
from grasp_guard.service.worker import BatchWorker, DeviceThread


def task(side: int = 64, preset: str = "fast", value: int = 0) -> CropTask:
    return CropTask(np.full((side, side, 3), value, np.uint8), np.ones((side, side), np.float32),
                    preset, SiteSpec(), 256)


class FakeEngine:
    """Records each batch's crop values; returns each crop + 1; can be held or made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail: Exception | None = None
        self.short = False

    def optimise(self, tasks: Sequence[CropTask]) -> list[CropOutcome]:
        self.batches.append([int(t.crop[0, 0, 0]) for t in tasks])
        self.entered.set()
        assert self.gate.wait(10)
        if self.fail is not None:
            raise self.fail
        outcomes = [CropOutcome(t.crop + 1, 1, 0.0, len(tasks)) for t in tasks]
        return outcomes[:-1] if self.short else outcomes


WorkerFactory = Callable[..., BatchWorker]


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics()


@pytest.fixture
def times() -> ServiceTimes:
    return ServiceTimes(prior_s=1.0)


@pytest.fixture
async def make_worker(engine: FakeEngine, metrics: ServiceMetrics,
                      times: ServiceTimes) -> AsyncIterator[WorkerFactory]:
    devices: list[DeviceThread] = []
    workers: list[BatchWorker] = []

    def make(max_batch: int = 8, gather_s: float = 0.0) -> BatchWorker:
        device = DeviceThread()
        worker = BatchWorker(engine, device, metrics, times,  # type: ignore[arg-type]
                             max_batch=max_batch, gather_s=gather_s)
        worker.start()
        devices.append(device)
        workers.append(worker)
        return worker

    yield make
    engine.gate.set()
    for worker in workers:
        await worker.stop()
    for device in devices:
        await device.close()


async def _hold(engine: FakeEngine, worker: BatchWorker) -> asyncio.Future[list[CropOutcome]]:
    """Occupy the device with a crop of value 99 until ``engine.gate`` is set."""
    engine.gate.clear()
    held = worker.submit([task(side=32, value=99)]).future
    assert await asyncio.to_thread(engine.entered.wait, 5)
    return held


async def test_outcomes_come_back_in_order(make_worker: WorkerFactory, engine: FakeEngine) -> None:
    worker = make_worker()
    outcomes = await worker.submit([task(value=1), task(value=2), task(value=3)]).future
    assert [int(o.protected[0, 0, 0]) for o in outcomes] == [2, 3, 4]
    assert engine.batches == [[1, 2, 3]]


async def test_groups_never_mix_and_oldest_goes_first(make_worker: WorkerFactory, engine: FakeEngine) -> None:
    worker = make_worker()
    held = await _hold(engine, worker)
    a = worker.submit([task(64, value=1), task(96, value=2)])
    b = worker.submit([task(96, value=3), task(64, "balanced", value=4), task(64, value=5)])
    engine.gate.set()
    await asyncio.gather(held, a.future, b.future)
    assert engine.batches == [[99], [1, 5], [2, 3], [4]]


async def test_max_batch_splits_a_group(make_worker: WorkerFactory, engine: FakeEngine) -> None:
    worker = make_worker(max_batch=2)
    held = await _hold(engine, worker)
    t = worker.submit([task(value=v) for v in range(5)])
    engine.gate.set()
    await asyncio.gather(held, t.future)
    assert engine.batches == [[99], [0, 1], [2, 3], [4]]


async def test_gather_window_waits_for_a_second_request(make_worker: WorkerFactory, engine: FakeEngine) -> None:
    worker = make_worker(gather_s=0.3)
    first = worker.submit([task(value=1)])
    await asyncio.sleep(0.05)
    second = worker.submit([task(value=2)])
    await asyncio.gather(first.future, second.future)
    assert engine.batches == [[1, 2]]
    assert first.queue_wait >= 0.25 and first.started


async def test_full_batch_does_not_wait_for_the_window(make_worker: WorkerFactory, engine: FakeEngine) -> None:
    worker = make_worker(max_batch=2, gather_s=5.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await worker.submit([task(value=1), task(value=2)]).future
    assert loop.time() - start < 2.0


async def test_cancelled_requests_are_dropped(make_worker: WorkerFactory, engine: FakeEngine,
                                              metrics: ServiceMetrics) -> None:
    worker = make_worker()
    held = await _hold(engine, worker)
    gone = worker.submit([task(value=1), task(value=2)])
    kept = worker.submit([task(value=3)])
    assert metrics.registry.get_sample_value("grasp_crops_pending") == 3
    gone.future.cancel()
    await asyncio.sleep(0)
    assert metrics.registry.get_sample_value("grasp_crops_pending") == 1  # not at the next batch
    engine.gate.set()
    await asyncio.gather(held, kept.future)
    assert engine.batches == [[99], [3]] and not gone.started


async def test_a_failed_batch_fails_its_requests_only(make_worker: WorkerFactory, engine: FakeEngine) -> None:
    worker = make_worker()
    engine.fail = RuntimeError("device fell over")
    with pytest.raises(RuntimeError, match="device fell over"):
        await worker.submit([task(value=1)]).future
    engine.short = True
    engine.fail = None
    with pytest.raises(RuntimeError, match="2 crops but 1 outcomes"):
        await worker.submit([task(value=1), task(value=2)]).future
    engine.short = False
    assert worker.running
    assert len(await worker.submit([task(value=3)]).future) == 1


async def test_stop_fails_waiting_and_running_requests(make_worker: WorkerFactory, engine: FakeEngine) -> None:
    worker = make_worker()
    held = await _hold(engine, worker)
    waiting = worker.submit([task(value=1)])
    await worker.stop()
    for future in (held, waiting.future):
        with pytest.raises(ServiceUnavailableError, match="shutting down"):
            await future
    assert not worker.running
    with pytest.raises(ServiceUnavailableError):
        worker.submit([task()])


async def test_batch_timings_teach_the_estimate(make_worker: WorkerFactory, engine: FakeEngine,
                                               times: ServiceTimes,
                                               metrics: ServiceMetrics) -> None:
    worker = make_worker()
    first = task(value=1)
    assert times.batch_seconds(first.group_key, 2) == 2.0  # the prior
    await worker.submit([first, task(value=2)]).future
    assert times.measured(first.group_key)
    assert times.batch_seconds(first.group_key, 2) < 1.0  # the fake answers at once
    assert metrics.registry.get_sample_value("grasp_admitted_total") == 1
    assert metrics.registry.get_sample_value(
        "grasp_crop_seconds_estimate", {"crop": "64", "preset": "fast"}) is not None


async def test_a_group_timed_too_slow_long_ago_is_timed_afresh_on_an_idle_device(
        make_worker: WorkerFactory, times: ServiceTimes) -> None:
    worker = make_worker()
    key = task().group_key
    now = asyncio.get_running_loop().time()
    times.observe(key, 1, 500.0, at=now - times.retime_s - 1)  # under a load spike, long ago
    await worker.submit([task(value=1)], finish_by=now + 2.0).future  # taken, to time it
    assert times.batch_seconds(key, 1) < 1.0 and times.due_in(key, now) > 0
    await worker.submit([task(value=2)], finish_by=now + 2.0).future  # the new timing admits


async def test_a_request_that_cannot_finish_in_time_is_refused_with_a_retry_hint(
        make_worker: WorkerFactory, engine: FakeEngine, metrics: ServiceMetrics) -> None:
    worker = make_worker()
    held = await _hold(engine, worker)  # a 32-px crop, unmeasured: expected busy for 1 s
    now = asyncio.get_running_loop().time()
    with pytest.raises(QueueFullError, match="in time") as refused:
        worker.submit([task(value=1), task(value=2)], finish_by=now + 2.0)
    # Free in 1 s, then the two crops (prior: 2 s): done in 3 s, 1 s past the 2 s it has.
    assert refused.value.retry_after_s == 1
    assert metrics.registry.get_sample_value("grasp_refused_total", {"reason": "deadline"}) == 1
    taken = worker.submit([task(value=3)], finish_by=now + 2.5)
    assert taken.expected_s == pytest.approx(2.0, abs=0.1)
    assert metrics.registry.get_sample_value("grasp_backlog_seconds") == pytest.approx(2.0,
                                                                                        abs=0.1)
    engine.gate.set()
    await asyncio.gather(held, taken.future)
    assert engine.batches == [[99], [3]]


async def test_a_staged_request_is_admitted_on_all_its_crops_and_its_later_stages_taken(
        make_worker: WorkerFactory, engine: FakeEngine) -> None:
    worker = make_worker()
    held = await _hold(engine, worker)  # expected busy for 1 s; each crop 1 s (the prior)
    now = asyncio.get_running_loop().time()
    first, later = [task(value=1)], [task(value=2), task(value=3)]
    with pytest.raises(QueueFullError, match="in time"):  # 1 + 3 s of work, 2.5 s left
        worker.submit(first, finish_by=now + 2.5, admitting=first + later)
    ticket = worker.submit(first, finish_by=now + 4.5, admitting=first + later)
    assert ticket.expected_s == pytest.approx(4.0, abs=0.1)
    engine.gate.set()
    await asyncio.gather(held, ticket.future)
    # past its deadline by now on the estimates, a later stage is taken all the same
    await worker.submit(later, finish_by=now, admitting=()).future
    assert engine.batches == [[99], [1], [2, 3]]
