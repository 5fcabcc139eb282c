"""A client that hangs up: served as `grasp-guard serve` serves, its request is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _service_helpers import SpyEngine, wait_for
from aiohttp import ClientSession, web

from grasp_guard.service import SERVER_OPTIONS, Settings, create_app
from grasp_guard.service.keys import METRICS, RUNTIME


async def _post_and_hang_up(port: int, body: bytes) -> asyncio.StreamWriter:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/protect?preset=fast HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg"
                 b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    return writer


@contextlib.asynccontextmanager
async def _served(app: web.Application, **options: Any) -> AsyncIterator[int]:
    """``app`` served on a free loopback port (its port), once its models are ready."""
    runner = web.AppRunner(app, **options)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        async with ClientSession() as session:
            while (await session.get(f"http://127.0.0.1:{port}/readyz")).status != 200:
                await asyncio.sleep(0.02)
        yield port
    finally:
        await runner.cleanup()


async def test_a_client_that_hangs_up_gives_its_slot_and_crops_back(
        spy: SpyEngine, face_jpeg: bytes) -> None:
    app = create_app(Settings(gather_ms=5.0, admission_prior_s=0.5, max_batch=1),
                     engine_factory=lambda _: spy)
    try:
        async with _served(app, **SERVER_OPTIONS) as port:
            runtime = app[RUNTIME]
            spy.gate.clear()  # the device is busy with the first request's crop
            first = await _post_and_hang_up(port, face_jpeg)
            await wait_for(spy.entered)
            second = await _post_and_hang_up(port, face_jpeg)  # queued behind it
            while runtime.in_flight < 2:
                await asyncio.sleep(0.02)
            first.close()
            second.close()
            for _ in range(250):
                if runtime.in_flight == 0:
                    break
                await asyncio.sleep(0.02)
            assert runtime.in_flight == 0, "slots still held for clients that went away"
            spy.gate.set()
            await asyncio.sleep(0.5)
            assert len(spy.batches) == 1, "the crop of a client that went away reached the device"
    finally:
        spy.gate.set()


async def test_a_client_that_hangs_up_while_its_answer_goes_is_no_error(
        spy: SpyEngine, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    # the answer is written by the handler: a connection lost there, in an app served
    # without handler cancellation, was a logged 500
    from grasp_guard.service import routes

    big = b"\xff\xd8" + bytes(64 * 2**20)  # past any socket buffer: the write waits on it

    async def admitted(*args: object) -> tuple[bytes, str, dict]:
        return big, "image/jpeg", {"protected": True, "faces": 1}

    monkeypatch.setattr(routes, "_protect_admitted", admitted)
    app = create_app(Settings(), engine_factory=lambda _: spy)
    async with _served(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/protect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(face_jpeg) + face_jpeg)
        await reader.readuntil(b"\r\n\r\n")
        await reader.read(65536)  # the answer under way
        writer.transport.abort()
        await asyncio.sleep(1.0)
        assert 'grasp_errors_total{kind="internal"}' not in app[METRICS].render().decode()
