"""Batching across requests, the bounded queue, deadlines and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from _service_helpers import ServiceFactory, SpyEngine, wait_for, wait_ready
from aiohttp import ClientResponse
from PIL import Image

from grasp_guard.models.editor import Editor
from grasp_guard.pipeline import CropOutcome, CropTask
from grasp_guard.service import Settings, create_app
from grasp_guard.service.keys import METRICS, RUNTIME


class SlowEngine(SpyEngine):
    """A device that takes ``per_crop_s`` a crop, batched or not (CPU-like); crops come back
    as they went, and their evaluation is skipped, so that only the device's time counts."""

    per_crop_s = 0.25

    def optimise(self, tasks: Sequence[CropTask], max_steps: int | None = None) -> list[CropOutcome]:
        self.batches.append([t.group_key for t in tasks])
        time.sleep(self.per_crop_s * len(tasks))
        return [CropOutcome(t.crop, 0, self.per_crop_s, len(tasks)) for t in tasks]

    def evaluate(self, original: Sequence[Any], protected: Sequence[Any]) -> list[dict[str, Any]]:
        return [{} for _ in original]


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


async def _batches_timed(client: object, n: int) -> None:
    """Wait until ``n`` optimisation batches have finished (read from /metrics)."""
    for _ in range(1000):
        text = await (await client.get("/metrics")).text()  # type: ignore[attr-defined]
        if f"grasp_optimise_seconds_count {float(n)}" in text:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never saw {n} finished batches")


async def test_deadline_while_optimising_is_504_and_while_queued_is_503(
        service: ServiceFactory, spy: SpyEngine, face_jpeg: bytes) -> None:
    # Admission expects both requests done in time (a crop estimated at 10 ms, the last CPU
    # stage measured at 0.1 s); the held device proves it wrong: genuine overload. The deadline
    # leaves room for the last request: a balanced step and its report take ~2 s on 2 cores.
    client = await service(max_batch=1, deadline_s=5.0, admission_prior_s=0.01)
    client.app[RUNTIME].times.observe_finish(0.1)  # type: ignore[index]
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
    # The dropped request's batch still runs to its end; the queued one's crop never runs.
    await _batches_timed(client, 1)
    assert len(spy.batches) == 1
    # The held batch taught the estimate that such a crop takes longer than the deadline:
    # the next one is refused at once. A crop of another kind, never timed, is taken.
    resp = await client.post("/v1/protect", data=face_jpeg, params={"preset": "fast"})
    assert resp.status == 429 and "alone exceeds" in (await resp.json())["error"]["message"]
    resp = await client.post("/v1/protect", data=face_jpeg, params={"preset": "balanced"})
    assert resp.status == 200 and len(spy.batches) == 2


async def _start_upload(client: Any, data: bytes, sent: int) -> tuple[Any, Any]:
    """Open a raw-image upload of ``data`` and send its first ``sent`` bytes only."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(b"POST /v1/protect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(data) + data[:sent])
    await writer.drain()
    return reader, writer


async def _send_in_pieces(writer: Any, data: bytes, piece: int) -> None:
    """Send ``data`` ``piece`` bytes every 0.05 s, until it is sent or the server hangs up."""
    with contextlib.suppress(ConnectionError):
        for i in range(0, len(data), piece):
            writer.write(data[i:i + piece])
            await writer.drain()
            await asyncio.sleep(0.05)


async def _answer(reader: Any, writer: Any) -> tuple[bytes, bytes]:
    head, _, body = (await asyncio.wait_for(reader.read(4096), 10)).partition(b"\r\n\r\n")
    writer.close()
    return head, body


async def test_an_upload_that_stalls_is_the_clients_timeout_not_an_overload(
        service: ServiceFactory, face_jpeg: bytes) -> None:
    client = await service(upload_timeout_s=1.0)
    head, body = await _answer(*await _start_upload(client, face_jpeg, 100))  # no more comes
    assert head.startswith(b"HTTP/1.1 408") and b"Retry-After" not in head
    assert b'"kind": "request_timeout"' in body and b"did not arrive in time" in body
    assert client.app[RUNTIME].in_flight == 0 and client.app[RUNTIME].arriving == 0


async def test_a_slow_upload_holds_no_request_slot(service: ServiceFactory,
                                                   face_jpeg: bytes) -> None:
    # One request slot: while a client sends its photo a byte now and then (slowloris), the
    # others are served, not refused 429 for as long as its time lasts.
    client = await service(queue_size=1, upload_timeout_s=30.0)
    slow = await _start_upload(client, face_jpeg, 100)
    for _ in range(3):
        resp = await client.post("/v1/protect", data=face_jpeg, params={"preset": "fast"})
        assert resp.status == 200, await resp.text()
    assert client.app[RUNTIME].arriving == 1
    slow[1].close()


async def test_a_trickled_upload_runs_out_of_time_and_a_steady_one_does_not(
        service: ServiceFactory, face_jpeg: bytes) -> None:
    # 0.5 s, and a second more for every 100 kB: a client that sends 50 bytes every 0.05 s
    # (1 kB/s) is cut off about 0.5 s in, though it never stops sending; one that sends
    # 400 kB/s takes longer than 0.5 s and is served.
    client = await service(upload_timeout_s=0.5, upload_min_rate=100_000)
    photo = face_jpeg + b"\0" * (400_000 - len(face_jpeg))  # JPEG decoders stop at EOI
    reader, writer = await _start_upload(client, photo, 0)
    sending = asyncio.create_task(_send_in_pieces(writer, photo, 50))
    started = time.monotonic()
    head, _ = await _answer(reader, writer)
    took = time.monotonic() - started
    sending.cancel()
    assert head.startswith(b"HTTP/1.1 408") and took < 2.0, (head, took)
    reader, writer = await _start_upload(client, photo, 0)
    await _send_in_pieces(writer, photo, 20_000)
    head, _ = await _answer(reader, writer)
    assert head.startswith(b"HTTP/1.1 200"), head


async def test_an_upload_past_its_longest_time_is_cut_off_whatever_its_rate(
        service: ServiceFactory, face_jpeg: bytes) -> None:
    client = await service(upload_timeout_s=0.3, upload_min_rate=1, upload_max_s=0.6)
    reader, writer = await _start_upload(client, face_jpeg, 0)
    sending = asyncio.create_task(_send_in_pieces(writer, face_jpeg, 20))
    head, body = await _answer(reader, writer)
    sending.cancel()
    assert head.startswith(b"HTTP/1.1 408") and b"0.6 s at most" in body


async def test_uploads_past_their_slots_are_refused_at_once(service: ServiceFactory,
                                                            face_jpeg: bytes) -> None:
    client = await service(upload_slots=1)
    slow = await _start_upload(client, face_jpeg, 100)
    while client.app[RUNTIME].arriving == 0:
        await asyncio.sleep(0.01)
    resp = await client.post("/v1/protect", data=face_jpeg, params={"preset": "fast"})
    assert resp.status == 429 and "Retry-After" in resp.headers
    assert "uploads are arriving" in (await resp.json())["error"]["message"]
    assert 'grasp_refused_total{reason="uploads_full"} 1.0' in await (
        await client.get("/metrics")).text()
    slow[1].close()


async def test_a_full_queue_refuses_before_the_body_arrives(service: ServiceFactory,
                                                            spy: SpyEngine,
                                                            face_jpeg: bytes) -> None:
    client = await service(queue_size=1)
    spy.gate.clear()
    held = asyncio.create_task(client.post("/v1/protect", data=face_jpeg,
                                           params={"preset": "fast"}))
    await wait_for(spy.entered)
    head, _ = await _answer(*await _start_upload(client, face_jpeg, 100))  # the rest never sent
    assert head.startswith(b"HTTP/1.1 429")
    spy.gate.set()
    assert (await held).status == 200


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


async def test_a_burst_gets_results_or_immediate_refusals_never_a_timeout(
        aiohttp_client: Any, editors: list[Editor], face_jpeg: bytes) -> None:
    engine = SlowEngine(editors)
    # 16 crops' worth of device time, part of it kept for the last CPU stage (which, on two
    # busy cores, takes about as long as a crop here); the prior is the default (60 s).
    deadline = 4.0
    client = await aiohttp_client(create_app(Settings(deadline_s=deadline, max_batch=2),
                                             engine_factory=lambda _: engine))
    await wait_ready(client)
    # A lone request on an idle device is always taken: it teaches the estimates.
    assert (await client.post("/v1/protect", data=face_jpeg)).status == 200

    async def timed() -> tuple[ClientResponse, float]:
        start = time.perf_counter()
        resp = await client.post("/v1/protect", data=face_jpeg)
        await resp.read()
        return resp, time.perf_counter() - start

    results = await asyncio.gather(*(timed() for _ in range(16)))
    statuses = Counter(resp.status for resp, _ in results)
    assert set(statuses) == {200, 429}, statuses
    assert statuses[200] >= 2 and sum(map(len, engine.batches)) == 1 + statuses[200]
    for resp, seconds in results:
        if resp.status == 200:
            assert seconds < deadline
        else:
            # At once: after its own decode and face detection (queued behind the burst's
            # on a busy CPU), never after waiting for the device.
            assert seconds < 0.75 * deadline
            assert int(resp.headers["Retry-After"]) >= 1
            assert "in time" in (await resp.json())["error"]["message"]
    metrics = client.app[METRICS].registry  # type: ignore[index]
    assert metrics.get_sample_value("grasp_admitted_total") == 1 + statuses[200]
    assert metrics.get_sample_value("grasp_refused_total", {"reason": "deadline"}) == statuses[429]
