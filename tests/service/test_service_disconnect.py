"""A client that hangs up: served as `grasp-guard serve` serves, its request is cancelled."""

from __future__ import annotations

import asyncio

from _service_helpers import SpyEngine, wait_for
from aiohttp import ClientSession, web

from grasp_guard.service import SERVER_OPTIONS, Settings, create_app
from grasp_guard.service.keys import RUNTIME


async def _post_and_hang_up(port: int, body: bytes) -> asyncio.StreamWriter:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/protect?preset=fast HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg"
                 b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    return writer


async def test_a_client_that_hangs_up_gives_its_slot_and_crops_back(
        spy: SpyEngine, face_jpeg: bytes) -> None:
    app = create_app(Settings(gather_ms=5.0, admission_prior_s=0.5, max_batch=1),
                     engine_factory=lambda _: spy)
    runner = web.AppRunner(app, **SERVER_OPTIONS)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        async with ClientSession() as session:
            while (await session.get(f"http://127.0.0.1:{port}/readyz")).status != 200:
                await asyncio.sleep(0.02)
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
        await runner.cleanup()
