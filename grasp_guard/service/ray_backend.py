"""The Ray Serve backend: the engine as replicas of a Ray Serve deployment.

The aiohttp front stays the service (auth, CORS, upload parsing, decoding and face detection,
the request slots, metrics, the JSON errors); an admitted image with faces goes, decoded, to
one replica of :class:`EngineReplica` through a ``DeploymentHandle``. Each replica is a
:class:`~grasp_guard.service.runtime.LocalRuntime`: the engine on its device (``num_gpus``
per replica, or a CPU slot), its batching worker batching the crops of the requests it holds,
its admission keeping their deadlines (429 with Retry-After when it cannot); it optimises,
pastes back, encodes and measures, and returns the image and its report whole.

A replica's measured batch times come back with each answer; the front keeps the newest of
each crop group and sends them with each request, so that a replica started in place of one
that died admits from its peers' timings rather than from the pessimistic prior.

What can go wrong maps to the service's errors: a replica's refusal or error crosses back as
it was raised; a request Ray cannot queue (``max_queued_requests``) is 429; a replica that
dies under a request (Ray restarts it) makes that request 503 with Retry-After, never a
partial answer; no replica answering within the deadline is 503.

Images reach the replicas through Ray's object store, in memory. The ``local`` cluster this
backend starts has object spilling to disk turned off, and runs its workers (the replicas) at
the service's own priority rather than Ray's niceness 15; a cluster joined with ``auto`` or
``ray://`` keeps its own settings (start it with ``automatic_object_spilling_enabled: false``
and ``worker_niceness: 0``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from typing import Any

# Ray's crash-report signal handler, installed as Ray loads, would take SIGTERM ahead of
# aiohttp's and abort the graceful shutdown (exit 134, the local cluster's agents orphaned).
os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")

import ray
from ray import serve
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from grasp_guard.errors import GraspGuardError, QueueFullError, ServiceUnavailableError
from grasp_guard.pipeline import PreparedImage
from grasp_guard.service.admission import TimesSnapshot, merge_snapshots
from grasp_guard.service.cpu import CpuStage
from grasp_guard.service.metrics import ServiceMetrics
from grasp_guard.service.processes import descendants
from grasp_guard.service.runtime import (
    EngineFactory,
    LocalRuntime,
    Protected,
    Runtime,
    deadline_error,
    load_engine,
)
from grasp_guard.service.settings import Settings

logger = logging.getLogger(__name__)

APP_NAME = "grasp-guard"
#: Seconds the front waits past a request's deadline for the replica's own deadline answer.
REPLY_GRACE_S = 2.0
#: Seconds between two looks at the replicas' states (for ``/readyz``).
STATUS_POLL_S = 2.0
#: Ray's system settings for the cluster this backend starts: no image written to disk, and
#: the replicas at the service's niceness. Ray starts workers at 15 to keep its own daemons
#: responsive, but here the workers are the engine, the service's whole work: at 15 any
#: process of the machine at 0 takes their CPU (measured: two replicas got one core between
#: them beside one busy neighbour, on two cores).
LOCAL_CLUSTER_CONFIG = {"automatic_object_spilling_enabled": False, "worker_niceness": 0}


class EngineReplica:
    """One replica: a local runtime (engine, device thread, batching worker, admission) and
    the CPU stage that finishes its images.

    Args:
        settings: the service settings (without the token).
        engine_factory: builds the engine in the replica's process.
    """

    async def __init__(  # type: ignore[misc]  # Ray Serve awaits an async constructor
            self, settings: Settings, engine_factory: EngineFactory) -> None:
        self._runtime = LocalRuntime(settings, ServiceMetrics(), engine_factory)
        self._cpu = CpuStage(settings.cpu_threads, settings.max_pixels, settings.detector,
                             settings.detector_model)
        await self._runtime.start()
        if self._runtime.error is not None:
            raise RuntimeError(self._runtime.error)

    async def describe(self) -> dict[str, Any]:
        """The replica's device and surrogates."""
        return self._runtime.describe()

    async def protect(self, prepared: PreparedImage, arrived: float, known: TimesSnapshot
                      ) -> tuple[Protected | GraspGuardError, TimesSnapshot]:
        """Optimise and finish an image that reached the front at ``arrived`` (wall clock);
        its deadline runs from then. ``known``: the batch times the replicas measured, for
        the crop groups this one has not timed yet.

        Returns:
            the image, its report and its seconds here, or the error the client is to be
            answered with (a refusal is an answer, not a replica failure: returned, it
            leaves no traceback in Ray's log); and this replica's batch times.
        """
        loop = asyncio.get_running_loop()
        times = self._runtime.times
        times.adopt(known, loop.time())
        start = loop.time() - max(0.0, time.time() - arrived)
        try:
            answer: Protected | GraspGuardError = await self._runtime.protect(
                prepared, self._cpu, start)
        except GraspGuardError as exc:
            answer = exc
        return answer, times.snapshot(loop.time())


def replica_gpus(settings: Settings, cluster_gpus: float) -> float:
    """The GPUs to reserve per replica: the setting, else one when the device asks for CUDA
    (or is ``auto`` on a cluster with a GPU), else none."""
    if settings.replica_gpus is not None:
        return settings.replica_gpus
    wants_cuda = settings.device.startswith("cuda") or (settings.device == "auto"
                                                        and cluster_gpus >= 1)
    return 1.0 if wants_cuda else 0.0


def deployment_options(settings: Settings, cluster_gpus: float) -> dict[str, Any]:
    """The ``serve.deployment`` options of the engine replicas."""
    options: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": settings.replica_cpus,
                              "num_gpus": replica_gpus(settings, cluster_gpus)},
        # A replica's own admission decides what it can finish in time; Ray only bounds
        # what waits for a replica (beyond: BackPressureError, 429).
        "max_ongoing_requests": settings.queue_size,
        "max_queued_requests": settings.queue_size,
        "graceful_shutdown_timeout_s": settings.shutdown_timeout_s,
    }
    if settings.autoscale is None:
        options["num_replicas"] = settings.replicas
    else:
        low, high = settings.autoscale
        options["autoscaling_config"] = {"min_replicas": low, "max_replicas": high,
                                         "target_ongoing_requests": settings.max_batch}
    return options


def running_replicas(status: Any) -> dict[str, int]:
    """The replicas of this service's deployment by state, from ``serve.status()``."""
    app = status.applications.get(APP_NAME)
    if app is None:
        return {}
    states: dict[str, int] = {}
    for deployment in app.deployments.values():
        for state, count in deployment.replica_states.items():
            states[str(getattr(state, "value", state))] = count
    return states


class RayRuntime(Runtime):
    """The front's side of the Ray backend: connects, deploys the replicas, calls them.
    The engine factory runs in each replica (it must pickle by reference)."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics,
                 engine_factory: EngineFactory = load_engine) -> None:
        super().__init__(settings, metrics, engine_factory)
        self._handle: Any = None
        self._replica: dict[str, Any] = {}
        self._states: dict[str, int] = {}
        self._owns_cluster = False
        self._watch: asyncio.Task[None] | None = None
        self._known: TimesSnapshot = {}  # the replicas' batch times, aged to _known_at
        self._known_at = 0.0

    async def start(self) -> None:
        """Join or start the cluster and deploy the replicas (blocking calls, on a thread);
        a failure is logged and kept in :attr:`error`."""
        try:
            self._handle = await asyncio.to_thread(self._deploy)
            self._replica = await self._handle.describe.remote()
        except Exception as exc:
            self.error = f"the Ray backend failed to start: {type(exc).__name__}: {exc}"
            logger.exception("the Ray backend failed to start")
            return
        self._states = await asyncio.to_thread(lambda: running_replicas(serve.status()))
        self._watch = asyncio.create_task(self._watch_replicas(), name="grasp-ray-status")
        logger.info("ready: Ray Serve replicas %s, %s", self._states, self._replica)

    def _deploy(self) -> Any:
        settings = self.settings
        if not ray.is_initialized():
            if settings.ray_address == "local":
                ray.init(address="local", include_dashboard=False,
                         _system_config=LOCAL_CLUSTER_CONFIG)
                self._owns_cluster = True
            else:
                ray.init(address=settings.ray_address)
        serve.start(proxy_location="Disabled")  # the front is this app, not Ray's proxy
        gpus = ray.cluster_resources().get("GPU", 0.0)
        # The replicas never see the token: they answer only the front, through Ray.
        shipped = dataclasses.replace(settings, token=None, host="127.0.0.1")
        deployment = serve.deployment(**deployment_options(settings, gpus))(EngineReplica)
        return serve.run(deployment.bind(shipped, self.engine_factory), name=APP_NAME,
                         route_prefix=None)

    async def _watch_replicas(self) -> None:
        while True:
            await asyncio.sleep(STATUS_POLL_S)
            try:
                self._states = await asyncio.to_thread(lambda: running_replicas(serve.status()))
            except Exception:  # a passing controller hiccup: keep the last states
                logger.warning("could not read the replicas' states", exc_info=True)

    def unavailable_reason(self) -> str | None:
        if self._handle is None:
            return self.error or "starting the Ray Serve replicas"
        if not self._states.get("RUNNING"):
            return f"no engine replica is running (replicas: {self._states or 'none'})"
        return None

    def describe(self) -> dict[str, Any]:
        return {**self._replica, "backend": "ray", "replicas": dict(self._states)}

    async def protect(self, prepared: PreparedImage, cpu: CpuStage, start: float) -> Protected:
        """Have a replica optimise and finish the image; its deadline runs from ``start``."""
        if self._handle is None:
            raise ServiceUnavailableError(self.unavailable_reason() or "not ready")
        loop = asyncio.get_running_loop()
        arrived = time.time() - (loop.time() - start)
        response = self._handle.protect.remote(prepared, arrived, self._learn({}))
        try:
            async with asyncio.timeout_at(start + self.settings.deadline_s + REPLY_GRACE_S):
                result, measured = await response
        except asyncio.CancelledError:
            response.cancel()  # the client went away: its crops leave the replica's queue
            raise
        except TimeoutError as exc:
            response.cancel()
            raise deadline_error(self.settings.deadline_s, started=False) from exc
        except RayTaskError as exc:
            raise exc.cause from None  # the replica failed: its error, as it raised it
        except BackPressureError as exc:
            self.metrics.refused.labels("replicas_busy").inc()
            raise QueueFullError(f"every engine replica is busy: {exc}") from exc
        except (RayActorError, DeploymentUnavailableError) as exc:
            raise ServiceUnavailableError(
                "the engine replica holding this request stopped before answering (Ray "
                f"restarts it); retry: {type(exc).__name__}") from exc
        self._learn(measured)
        if isinstance(result, GraspGuardError):
            raise result
        return result

    def _learn(self, measured: TimesSnapshot) -> TimesSnapshot:
        """Keep the newest of ``measured`` and what was known; returns it, aged to now."""
        now = asyncio.get_running_loop().time()
        self._known = merge_snapshots(self._known, measured, now - self._known_at)
        self._known_at = now
        return self._known

    async def close(self) -> None:
        """Stop watching, delete the deployment, and stop the cluster if this started it."""
        self.draining = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if ray.is_initialized():
            await asyncio.to_thread(self._undeploy)

    def _undeploy(self) -> None:
        try:
            serve.delete(APP_NAME)
        except Exception:
            logger.warning("could not delete the Ray Serve application", exc_info=True)
        if self._owns_cluster:
            serve.shutdown()
            ray.shutdown()



def replica_pids(root: int) -> list[int]:
    """The process ids of this service's engine replicas among ``root``'s descendants (with
    the ``local`` cluster, ``root`` is the service's own process). For fault drills: the
    load bench's replica kills, the tests."""
    title = f"ray::ServeReplica:{APP_NAME}:"
    return sorted(pid for pid, cmdline in descendants(root).items() if cmdline.startswith(title))
