"""The service's routes: protect, liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from aiohttp import hdrs, web
from grasp_sdk.options import ProtectOptions

from grasp_guard.errors import DeadlineExceededError
from grasp_guard.pipeline import Engine, finish
from grasp_guard.service.admission import optimise_by
from grasp_guard.service.cpu import CpuStage
from grasp_guard.service.keys import CPU, METRICS, RUNTIME, SETTINGS
from grasp_guard.service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from grasp_guard.service.report import REPORT_HEADER, compact_report, report_header
from grasp_guard.service.upload import read_upload
from grasp_guard.service.worker import BatchWorker, Ticket


async def _protect_admitted(request: web.Request, engine: Engine, worker: BatchWorker,
                            cpu: CpuStage) -> tuple[bytes, str, dict[str, Any]]:
    """Read, prepare, optimise (batched by the worker) and finish one image, in time.

    The worker takes the crops only if they can be optimised early enough to leave the
    last CPU stage its expected time before the deadline, with some headroom, for a full
    batch's requests finishing ``cpu_threads`` at a time
    (:func:`~grasp_guard.service.admission.optimise_by`; QueueFullError otherwise).
    """
    settings = request.app[SETTINGS]
    times = request.app[RUNTIME].times
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + settings.deadline_s
    ticket: Ticket | None = None
    try:
        async with asyncio.timeout_at(deadline):
            data, params = await read_upload(request, settings.max_bytes)
            options = ProtectOptions.from_params(params)
            prepared = await cpu.prepare(data, options)
            if prepared.passthrough:
                out, report = finish(prepared, [], engine)  # no pixels: nothing to encode
            else:
                rounds = math.ceil(settings.max_batch / settings.cpu_threads)
                ticket = worker.submit(prepared.tasks,
                                       optimise_by(start, settings.deadline_s, times, rounds))
                outcomes = await ticket.future
                out, report, finish_s = await cpu.finish(prepared, outcomes, engine)
                times.observe_finish(finish_s)
    except TimeoutError as exc:
        started = ticket is not None and ticket.started
        where = "while optimising" if started else "before its optimisation began"
        raise DeadlineExceededError(
            f"the request ran out of its {settings.deadline_s:g} s deadline {where}; "
            "its work was dropped", started=started) from exc
    seconds = {"total": loop.time() - start}
    if ticket is not None:
        seconds["queue"] = ticket.queue_wait
        seconds["expected"] = ticket.expected_s  # until optimised, as admission expected
    mime = prepared.image.mime
    return out, mime, compact_report(report, seconds)


async def protect(request: web.Request) -> web.Response:
    """``POST /v1/protect``: the protected image, its report in ``X-Grasp-Report``."""
    metrics = request.app[METRICS]
    started = time.perf_counter()
    try:
        with request.app[RUNTIME].admit() as (engine, worker):
            out, mime, report = await _protect_admitted(request, engine, worker,
                                                        request.app[CPU])
    finally:
        metrics.request_seconds.observe(time.perf_counter() - started)
    metrics.images.labels("protected" if report["protected"] else "unchanged").inc()
    metrics.faces.inc(report["faces"])
    return web.Response(body=out, headers={
        hdrs.CONTENT_TYPE: mime,
        REPORT_HEADER: report_header(report),
        hdrs.CACHE_CONTROL: "no-store",
    })


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: the process is alive (no token asked)."""
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 when the models are loaded and warm and the queue has room."""
    runtime = request.app[RUNTIME]
    settings = request.app[SETTINGS]
    reason = runtime.not_ready_reason()
    engine = runtime.engine
    body: dict[str, Any] = {"queue": runtime.in_flight, "queue_size": settings.queue_size}
    if reason is not None or engine is None:
        return web.json_response({"status": "unready", "reason": reason, **body}, status=503,
                                 headers={hdrs.RETRY_AFTER: str(settings.retry_after_s)})
    return web.json_response({"status": "ready", "device": str(engine.device),
                              "surrogates": engine.labels, **body})


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
