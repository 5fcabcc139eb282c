"""The service's routes: protect, liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import hdrs, web
from grasp_sdk.options import ProtectOptions

from grasp_guard.errors import ConfigError
from grasp_guard.pipeline import passthrough_report
from grasp_guard.service.cpu import CpuStage
from grasp_guard.service.keys import CPU, METRICS, RUNTIME, SETTINGS
from grasp_guard.service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from grasp_guard.service.report import REPORT_HEADER, compact_report, report_header
from grasp_guard.service.runtime import Runtime, deadline_error
from grasp_guard.service.settings import Settings
from grasp_guard.service.upload import read_upload

logger = logging.getLogger(__name__)


def _options(params: dict[str, str]) -> ProtectOptions:
    """The request's options; a bad one is the client's error (ConfigError, 400)."""
    try:
        return ProtectOptions.from_params(params)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


async def _receive(request: web.Request,
                   settings: Settings) -> tuple[bytes, dict[str, str]]:
    """The upload's image and options, read within ``upload_timeout_s`` and one second more
    for every ``upload_min_rate`` bytes that arrive, ``upload_max_s`` at most: a slow link
    gets the time its photo needs, a client that trickles bytes to hold a slot does not."""
    start = asyncio.get_running_loop().time()
    due = start + settings.upload_timeout_s
    try:
        async with asyncio.timeout_at(due) as timer:
            def arrived(n: int) -> None:
                nonlocal due
                due = min(due + n / settings.upload_min_rate, start + settings.upload_max_s)
                timer.reschedule(due)
            return await read_upload(request, settings.max_bytes, arrived)
    except TimeoutError as exc:  # the client's upload, not the service, was too slow
        raise web.HTTPRequestTimeout(
            text=f"the upload did not arrive in time ({settings.upload_timeout_s:g} s, one "
                 f"more for every {settings.upload_min_rate} bytes, "
                 f"{settings.upload_max_s:g} s at most)") from exc


async def _protect_admitted(data: bytes, params: dict[str, str], settings: Settings,
                            runtime: Runtime, cpu: CpuStage) -> tuple[bytes, str, dict[str, Any]]:
    """Prepare one arrived image in time, then have the runtime optimise and finish it."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        async with asyncio.timeout_at(start + settings.deadline_s):
            options = _options(params)
            prepared = await cpu.prepare(data, options)
    except TimeoutError as exc:
        raise deadline_error(settings.deadline_s, started=False) from exc
    seconds: dict[str, float] = {}
    if prepared.passthrough:  # no pixels: nothing to encode
        out, report = prepared.data, passthrough_report(prepared)
    else:
        out, report, seconds = await runtime.protect(prepared, cpu, start)
    seconds = {"total": loop.time() - start, **seconds}
    return out, prepared.image.mime, compact_report(report, seconds)


async def protect(request: web.Request) -> web.StreamResponse:
    """``POST /v1/protect``: the protected image, its report in ``X-Grasp-Report``. The body
    arrives before the request is admitted (its own slots and timeout), so that a slow
    client holds none of the slots of the work. The answer is written here, not returned
    with its body: aiohttp keeps the last answer of a connection while it waits for the
    next request (keep-alive, 75 s), and a whole image with it."""
    metrics = request.app[METRICS]
    runtime = request.app[RUNTIME]
    settings = request.app[SETTINGS]
    started = time.perf_counter()
    try:
        runtime.check_room()
        with runtime.receive():
            data, params = await _receive(request, settings)
        with runtime.admit():
            out, mime, report = await _protect_admitted(data, params, settings, runtime,
                                                        request.app[CPU])
    finally:
        metrics.request_seconds.observe(time.perf_counter() - started)
    metrics.images.labels("protected" if report["protected"] else "unchanged").inc()
    metrics.faces.inc(report["faces"])
    response = web.StreamResponse(headers={
        hdrs.CONTENT_TYPE: mime,
        REPORT_HEADER: report_header(report),
        hdrs.CACHE_CONTROL: "no-store",
    })
    response.content_length = len(out)
    try:
        await response.prepare(request)
        await response.write(out)
        await response.write_eof()
    except ConnectionError:  # the client hung up while its answer went: nobody to tell
        logger.info("POST /v1/protect: the client hung up while its answer was sent")
    return response


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: the process is alive (no token asked)."""
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 when the models are loaded and warm and the queue has room."""
    runtime = request.app[RUNTIME]
    settings = request.app[SETTINGS]
    reason = runtime.not_ready_reason()
    body: dict[str, Any] = {"queue": runtime.in_flight, "queue_size": settings.queue_size}
    if reason is not None:
        return web.json_response({"status": "unready", "reason": reason, **body}, status=503,
                                 headers={hdrs.RETRY_AFTER: str(settings.retry_after_s)})
    return web.json_response({"status": "ready", **runtime.describe(), **body})


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text format, from the app's own registry."""
    return web.Response(body=request.app[METRICS].render(),
                        headers={hdrs.CONTENT_TYPE: METRICS_CONTENT_TYPE})


def setup_routes(app: web.Application) -> None:
    """Register every route of the service."""
    app.router.add_post("/v1/protect", protect)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
