"""The Ray Serve backend: error mapping on a stand-in handle, and `grasp-guard serve --backend
ray` with a local cluster of 2 CPU replicas of the reference engine, started and stopped here
(a replica SIGKILLed under a request included)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("ray.serve")

from grasp_sdk import GraspClient, ProtectOptions
from PIL import Image
from ray.exceptions import ActorDiedError, RayTaskError
from ray.serve._private.common import ReplicaState
from ray.serve.exceptions import BackPressureError

from grasp_guard.errors import (
    DeadlineExceededError,
    InvalidImageError,
    QueueFullError,
    ServiceUnavailableError,
)
from grasp_guard.service.metrics import ServiceMetrics
from grasp_guard.service.processes import cpu_seconds, descendants
from grasp_guard.service.ray_backend import (
    APP_NAME,
    RayRuntime,
    deployment_options,
    replica_gpus,
    replica_pids,
    running_replicas,
)
from grasp_guard.service.settings import Settings

pytestmark = pytest.mark.ray

TOKEN = "ray-test-token"
START_S = 240.0


class StandInResponse:
    """What ``handle.protect.remote`` returns: awaitable once, cancellable."""

    def __init__(self, outcome: Any, delay: float = 0.0) -> None:
        self.outcome = outcome
        self.delay = delay
        self.cancelled = False

    def __await__(self) -> Any:
        return self._result().__await__()

    async def _result(self) -> Any:
        await asyncio.sleep(self.delay)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def cancel(self) -> None:
        self.cancelled = True


class StandInHandle:
    def __init__(self, response: StandInResponse) -> None:
        self.response = response
        self.protect = self
        self.calls: list[tuple[Any, ...]] = []

    def remote(self, *args: Any) -> StandInResponse:
        self.calls.append(args)
        return self.response


def _runtime(response: StandInResponse, **settings: Any) -> tuple[RayRuntime, StandInHandle]:
    runtime = RayRuntime(Settings(backend="ray", **settings), ServiceMetrics())
    handle = StandInHandle(response)
    runtime._handle = handle
    runtime._states = {"RUNNING": 2}
    return runtime, handle


PROTECTED = (b"image", {"protected": True}, {"queue": 0.1})
GROUP = (128, "fast", None, None, None, 1.0)


@pytest.mark.parametrize(("outcome", "expected"), [
    ((QueueFullError("late", retry_after_s=7), {}), QueueFullError),
    ((DeadlineExceededError("late", started=True), {}), DeadlineExceededError),
    (RayTaskError("protect", "traceback", InvalidImageError("bad")), InvalidImageError),
    (BackPressureError(32, 32), QueueFullError),
    (ActorDiedError(), ServiceUnavailableError),
])
async def test_replica_outcomes_become_the_services_errors(outcome: Any,
                                                           expected: type[Exception]) -> None:
    runtime, _ = _runtime(StandInResponse(outcome))
    with pytest.raises(expected) as caught:
        await runtime.protect(None, None, asyncio.get_running_loop().time())  # type: ignore[arg-type]
    assert "traceback" not in str(caught.value)
    if expected is QueueFullError and not isinstance(outcome, BackPressureError):
        assert caught.value.retry_after_s == 7  # type: ignore[attr-defined]


async def test_a_result_comes_back_whole_with_the_arrival_on_the_wall_clock() -> None:
    runtime, handle = _runtime(StandInResponse((PROTECTED, {})))
    loop = asyncio.get_running_loop()
    assert await runtime.protect("prepared", None, loop.time() - 5.0) == PROTECTED  # type: ignore[arg-type]
    (prepared, arrived, known), = handle.calls
    assert prepared == "prepared" and known == {}
    assert time.time() - 5.5 < arrived < time.time() - 4.5


async def test_the_batch_times_a_replica_measured_go_out_with_the_next_requests() -> None:
    measured = {GROUP: {1: (10.0, 5.0, 1, 2.0)}}
    runtime, handle = _runtime(StandInResponse((QueueFullError("late", retry_after_s=3),
                                                measured)))
    loop = asyncio.get_running_loop()
    with pytest.raises(QueueFullError):  # a refusal brings the replica's times too
        await runtime.protect(None, None, loop.time())  # type: ignore[arg-type]
    handle.response = StandInResponse((PROTECTED, {}))
    await asyncio.sleep(0.05)
    assert await runtime.protect(None, None, loop.time()) == PROTECTED  # type: ignore[arg-type]
    (*_, first), (*_, second) = handle.calls
    assert first == {}
    (value, deviation, count, age), = second[GROUP].values()
    assert (value, deviation, count) == (10.0, 5.0, 1) and 2.05 <= age < 3.0


async def test_no_answer_by_the_deadline_is_503_and_cancels_the_call() -> None:
    response = StandInResponse((PROTECTED, {}), delay=30.0)
    runtime, _ = _runtime(response, deadline_s=0.05)
    with pytest.raises(DeadlineExceededError) as caught:
        await runtime.protect(None, None, asyncio.get_running_loop().time() - 2.0)  # type: ignore[arg-type]
    assert not caught.value.started and response.cancelled


@pytest.mark.parametrize(("states", "ready"), [
    ({"RUNNING": 2}, True),
    ({"RUNNING": 1, "STARTING": 1}, True),
    ({"STARTING": 2}, False),
    ({}, False),
])
def test_ready_while_a_replica_runs(states: dict[str, int], ready: bool) -> None:
    runtime, _ = _runtime(StandInResponse(PROTECTED))
    runtime._states = states
    assert (runtime.not_ready_reason() is None) is ready


def test_replica_states_of_this_services_application_only() -> None:
    def app(states: dict[Any, int]) -> SimpleNamespace:
        return SimpleNamespace(deployments={"EngineReplica": SimpleNamespace(
            replica_states=states)})

    status = SimpleNamespace(applications={
        APP_NAME: app({ReplicaState.RUNNING: 1, ReplicaState.STARTING: 1}),
        "someone-else": app({ReplicaState.RUNNING: 5})})
    assert running_replicas(status) == {"RUNNING": 1, "STARTING": 1}
    assert running_replicas(SimpleNamespace(applications={})) == {}


@pytest.mark.parametrize(("device", "setting", "cluster_gpus", "expected"), [
    ("auto", None, 0.0, 0.0),
    ("auto", None, 4.0, 1.0),
    ("cuda", None, 0.0, 1.0),
    ("cpu", None, 4.0, 0.0),
    ("auto", 0.5, 4.0, 0.5),
])
def test_gpus_per_replica(device: str, setting: float | None, cluster_gpus: float,
                          expected: float) -> None:
    settings = Settings(backend="ray", device=device, replica_gpus=setting)
    assert replica_gpus(settings, cluster_gpus) == expected


def test_deployment_options_fixed_or_autoscaled() -> None:
    fixed = deployment_options(Settings(backend="ray", replicas=3, queue_size=16), 0.0)
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed
    assert fixed["max_ongoing_requests"] == fixed["max_queued_requests"] == 16
    assert fixed["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 0.0}
    scaled = deployment_options(Settings(backend="ray", autoscale=(1, 4), max_batch=8), 2.0)
    assert "num_replicas" not in scaled
    assert scaled["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4,
                                            "target_ongoing_requests": 8}
    assert scaled["ray_actor_options"]["num_gpus"] == 1.0


# --- a real local cluster -------------------------------------------------------------------


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _post(url: str, data: bytes, preset: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        f"{url}/v1/protect?preset={preset}", data=data, method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/jpeg"})
    try:
        with urllib.request.urlopen(request, timeout=180) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _busy_replica(root: int, timeout: float) -> int:
    """A replica that is working (at least half a CPU over a second)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        before = {pid: cpu_seconds(pid) for pid in replica_pids(root)}
        time.sleep(1.0)
        for pid, seconds in before.items():
            try:
                if cpu_seconds(pid) - seconds > 0.5:
                    return pid
            except OSError:
                continue
    raise AssertionError("no replica started working on the request")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`grasp-guard serve --backend ray`: a local cluster, 2 CPU replicas of the reference."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("two replicas of one CPU each need a machine with two CPUs")
    port = _free_port()
    log = tmp_path_factory.mktemp("ray") / "serve.log"
    command = [sys.executable, "-m", "grasp_guard", "-v", "serve", "--port", str(port),
               "--device", "cpu", "--models", "reference", "--backend", "ray",
               "--address", "local", "--replicas", "2"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "GRASP_GUARD_TOKEN": TOKEN})
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + START_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"the service exited: {log.read_text()[-3000:]}")
            try:
                if _get(url + "/readyz")[0] == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > end:
                pytest.fail(f"not ready in {START_S:g} s: {log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Served(url, process, log)
        cluster = descendants(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # A clean shutdown: exit 0, and the local cluster's processes gone with the service.
    assert process.returncode == 0, log.read_text()[-3000:]
    end = time.monotonic() + 30
    while left := [pid for pid in cluster if Path(f"/proc/{pid}").exists()]:
        assert time.monotonic() < end, f"left behind: {[cluster[pid] for pid in left]}"
        time.sleep(0.5)


def _face_jpeg(face_rgb: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(face_rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_readyz_names_the_backend_and_its_running_replicas(served: Served) -> None:
    status, body = _get(served.url + "/readyz")
    assert status == 200
    assert body["backend"] == "ray" and body["replicas"].get("RUNNING") == 2
    assert body["device"] == "cpu" and body["surrogates"][0].startswith("reference")
    assert len(replica_pids(served.process.pid)) == 2


def test_replicas_run_at_the_services_own_priority(served: Served) -> None:
    """Not at Ray's worker niceness (15), where any busy neighbour starves the engine."""
    niceness = os.getpriority(os.PRIO_PROCESS, served.process.pid)
    pids = replica_pids(served.process.pid)
    assert pids and {os.getpriority(os.PRIO_PROCESS, pid) for pid in pids} == {niceness}


def test_replicas_protect_faces_and_pass_faceless_images_through(
        served: Served, face_rgb: Any, noface_png: bytes) -> None:
    status, headers, body = _post(served.url, _face_jpeg(face_rgb), "fast")
    assert status == 200, body[:300]
    report = json.loads(headers["X-Grasp-Report"])
    assert report["protected"] and report["faces"] == 1 and report["regions"][0]["psnr"] > 35
    with Image.open(io.BytesIO(body)) as image:
        assert image.size == (face_rgb.shape[1], face_rgb.shape[0])
    request = urllib.request.Request(f"{served.url}/v1/protect", data=noface_png, method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}",
                                              "Content-Type": "image/png"})
    with urllib.request.urlopen(request, timeout=60) as resp:
        assert resp.read() == noface_png


def test_a_replica_killed_under_a_request_is_a_clean_503_and_the_sdk_retries_to_a_result(
        served: Served, face_rgb: Any) -> None:
    data = _face_jpeg(face_rgb)
    answers: list[tuple[int, dict[str, str], bytes]] = []
    thread = threading.Thread(target=lambda: answers.append(_post(served.url, data, "balanced")))
    thread.start()
    victim = _busy_replica(served.process.pid, timeout=60)
    os.kill(victim, signal.SIGKILL)
    thread.join(120)
    (status, headers, body), = answers
    assert status == 503, body[:300]
    assert json.loads(body)["error"]["kind"] == "unavailable"
    assert int(headers["Retry-After"]) >= 1

    async def protect() -> Any:
        async with GraspClient(served.url, token=TOKEN, total_timeout=150) as client:
            return await client.protect(data, ProtectOptions(preset="fast"),
                                        content_type="image/jpeg")

    result = asyncio.run(protect())
    assert result.report["protected"] and result.report["faces"] == 1
    end = time.monotonic() + 90
    while len(pids := replica_pids(served.process.pid)) < 2 or victim in pids:
        assert time.monotonic() < end, "Ray did not restart the killed replica"
        time.sleep(1)
