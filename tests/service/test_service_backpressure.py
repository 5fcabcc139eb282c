"""Batching across requests, the bounded queue, deadlines and graceful shutdown."""

from __future__ import annotations

import asyncio
import io
import time

from _service_helpers import ServiceFactory, SpyEngine, wait_for
from PIL import Image

from grasp_guard.service.keys import RUNTIME


async def _pending_crops(client: object, n: int) -> None:
    """Wait until ``n`` crops wait for the device (read from /metrics)."""
    for _ in range(500):
        text = await (await client.get("/metrics")).text()  # type: ignore[attr-defined]
        if f"grasp_crops_pending {float(n)}" in text:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never saw {n} pending crops")


async def test_crops_of_concurrent_requests_share_one_engine_call(
        service: ServiceFactory, spy: SpyEngine, face_jpeg: bytes) -> None:
    client = await service(max_batch=8, gather_ms=5.0)
    # Hold the worker on a first request (another group: preset balanced) so that the
    # next two requests' crops wait together, whatever the timing.
    spy.gate.clear()
    first = asyncio.create_task(client.post("/v1/protect", data=face_jpeg,
                                            params={"preset": "balanced"}))
    await wait_for(spy.entered)
    a = asyncio.create_task(client.post("/v1/protect", data=face_jpeg, params={"preset": "fast"}))
    b = asyncio.create_task(client.post("/v1/protect", data=face_jpeg, params={"preset": "fast"}))
    await _pending_crops(client, 2)
    spy.gate.set()
    responses = await asyncio.gather(first, a, b)
    assert [r.status for r in responses] == [200, 200, 200]
    assert [len(batch) for batch in spy.batches] == [1, 2]
    assert spy.batches[1][0] == spy.batches[1][1] and spy.batches[1][0][1] == "fast"
    for resp in responses[1:]:
        assert '"batch_size":2' in resp.headers["X-Grasp-Report"]


async def test_batches_split_at_max_batch(service: ServiceFactory, spy: SpyEngine,
                                          face_jpeg: bytes) -> None:
    client = await service(max_batch=2)
    spy.gate.clear()
    first = asyncio.create_task(client.post("/v1/protect", data=face_jpeg,
                                            params={"preset": "balanced"}))
    await wait_for(spy.entered)
    rest = [asyncio.create_task(client.post("/v1/protect", data=face_jpeg,
                                            params={"preset": "fast"})) for _ in range(3)]
    await _pending_crops(client, 3)
    spy.gate.set()
    assert [r.status for r in await asyncio.gather(first, *rest)] == [200] * 4
    assert [len(batch) for batch in spy.batches] == [1, 2, 1]


async def test_full_queue_answers_429_at_once(service: ServiceFactory, spy: SpyEngine,
                                              face_jpeg: bytes) -> None:
    client = await service(queue_size=1, retry_after_s=3)
    spy.gate.clear()
    held = asyncio.create_task(client.post("/v1/protect", data=face_jpeg,
                                           params={"preset": "fast"}))
    await wait_for(spy.entered)
    start = time.perf_counter()
    resp = await client.post("/v1/protect", data=face_jpeg)
    assert time.perf_counter() - start < 1.0
    assert resp.status == 429 and resp.headers["Retry-After"] == "3"
    assert (await resp.json())["error"]["kind"] == "queue_full"
    ready = await client.get("/readyz")
    assert ready.status == 503 and "queue is full" in (await ready.json())["reason"]
    spy.gate.set()
    assert (await held).status == 200
    assert (await client.get("/readyz")).status == 200


async def test_deadline_while_optimising_is_504_and_while_queued_is_503(
        service: ServiceFactory, spy: SpyEngine, face_jpeg: bytes) -> None:
    client = await service(max_batch=1, deadline_s=2.0)
    spy.gate.clear()
    optimising = asyncio.create_task(client.post("/v1/protect", data=face_jpeg,
                                                 params={"preset": "fast"}))
    await wait_for(spy.entered)
    queued = asyncio.create_task(client.post("/v1/protect", data=face_jpeg,
                                             params={"preset": "fast"}))
    slow, waiting = await asyncio.gather(optimising, queued)
    assert slow.status == 504
    assert (await slow.json())["error"]["kind"] == "deadline_exceeded"
    assert waiting.status == 503 and "Retry-After" in waiting.headers
    assert (await waiting.json())["error"]["kind"] == "deadline_exceeded"
    spy.gate.set()
    # The queued request's crop was dropped: the engine never saw a second batch.
    await asyncio.sleep(0.2)
    assert len(spy.batches) == 1
    resp = await client.post("/v1/protect", data=face_jpeg, params={"preset": "fast"})
    assert resp.status == 200 and len(spy.batches) == 2


async def test_shutdown_finishes_the_in_flight_request(service: ServiceFactory, spy: SpyEngine,
                                                       face_jpeg: bytes) -> None:
    client = await service()
    spy.gate.clear()
    in_flight = asyncio.create_task(client.post("/v1/protect", data=face_jpeg,
                                                params={"preset": "fast"}))
    await wait_for(spy.entered)
    closing = asyncio.create_task(client.server.close())
    await asyncio.sleep(0.2)
    assert not closing.done()  # the server waits for the request...
    spy.gate.set()  # ...which then completes with a protected image
    resp = await in_flight
    assert resp.status == 200
    Image.open(io.BytesIO(await resp.read())).verify()
    await asyncio.wait_for(closing, 10)
    runtime = client.app[RUNTIME]  # type: ignore[index]
    assert runtime.draining and runtime.worker is not None and not runtime.worker.running
