"""``create_app(settings)``: the protection service as an aiohttp application.

Cleanup contexts own what the app runs with: the CPU thread pool, and the runtime (the
engine on its device thread and the batching worker, or, with the ``ray`` backend, the Ray
Serve replicas holding them). On shutdown the app stops admitting, lets the admitted
requests finish, then stops the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from grasp_guard.errors import ConfigError
from grasp_guard.service.auth import bearer_auth
from grasp_guard.service.cors import cors_headers, origin_guard
from grasp_guard.service.cpu import CpuStage
from grasp_guard.service.keys import CPU, METRICS, RUNTIME, SETTINGS
from grasp_guard.service.metrics import ServiceMetrics
from grasp_guard.service.middleware import error_middleware
from grasp_guard.service.routes import setup_routes
from grasp_guard.service.runtime import EngineFactory, LocalRuntime, Runtime, load_engine
from grasp_guard.service.settings import Settings


@contextlib.asynccontextmanager
async def cpu_context(app: web.Application) -> AsyncIterator[None]:
    """The thread pool that decodes, detects and encodes off the event loop."""
    settings = app[SETTINGS]
    cpu = CpuStage(settings.cpu_threads, settings.max_pixels, settings.detector,
                   settings.detector_model)
    app[CPU] = cpu
    try:
        yield
    finally:
        await cpu.close()


def runtime_class(backend: str) -> type[Runtime]:
    """The runtime of a backend: the engine in this process, or Ray Serve replicas of it.

    Raises:
        ConfigError: the ``ray`` backend without Ray Serve installed.
    """
    if backend == "ray":
        try:
            from grasp_guard.service.ray_backend import RayRuntime
        except ImportError as exc:
            raise ConfigError("the ray backend needs Ray Serve: "
                              "pip install 'grasp-guard[ray]'") from exc
        return RayRuntime
    return LocalRuntime


def runtime_context(
    runtime_cls: type[Runtime], engine_factory: EngineFactory,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    """The cleanup context owning the runtime (the engine and its worker, or the Ray
    replicas), whose engine ``engine_factory`` builds."""

    @contextlib.asynccontextmanager
    async def context(app: web.Application) -> AsyncIterator[None]:
        runtime = runtime_cls(app[SETTINGS], app[METRICS], engine_factory)
        app[RUNTIME] = runtime
        loading = asyncio.create_task(runtime.start(), name="grasp-load-models")
        try:
            yield
        finally:
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading
            await runtime.close()

    return context


async def _drain(app: web.Application) -> None:
    """on_shutdown: stop admitting and let the admitted requests finish."""
    await app[RUNTIME].drain(app[SETTINGS].shutdown_timeout_s)


# How the service is served (``web.run_app``, ``web.AppRunner``): a client that hangs up
# cancels its request, so its admission slot and its queued crops are given up at once
# rather than at the end of the work or the deadline.
SERVER_OPTIONS = {"handler_cancellation": True}


def create_app(settings: Settings | None = None, *,
               engine_factory: EngineFactory = load_engine) -> web.Application:
    """The protection service.

    Args:
        settings: how it runs (default: the embedded defaults).
        engine_factory: builds the engine from the settings (blocking; it runs on the
            device thread while the app already answers ``/healthz``; with the ``ray``
            backend, in each replica).

    Raises:
        ConfigError: the ``ray`` backend without Ray Serve installed.
    """
    settings = settings or Settings()
    # Outermost, the origin check: a foreign page is refused before anything else runs, and
    # an allowed origin's answers (errors included) carry its CORS headers.
    middlewares: list[Middleware] = [origin_guard(settings.cors_origins), error_middleware]
    if settings.token is not None:
        middlewares.append(bearer_auth(settings.token))
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_bytes)
    app[SETTINGS] = settings
    app[METRICS] = ServiceMetrics()
    app.cleanup_ctx.append(cpu_context)
    app.cleanup_ctx.append(runtime_context(runtime_class(settings.backend), engine_factory))
    app.on_shutdown.append(_drain)
    app.on_response_prepare.append(cors_headers(settings.cors_origins))
    setup_routes(app)
    return app
