"""`grasp-guard serve` as a real subprocess on loopback, driven through the SDK clients."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from grasp_sdk import GraspClient, ProtectOptions, ServiceError, SyncGraspClient
from PIL import Image

from grasp_guard.cli import main

TOKEN = "integration-test-token"
START_S = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _ready(url: str) -> bool:
    request = urllib.request.Request(url + "/readyz", headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _serve(tmp: Path) -> Served:
    port = _free_port()
    log = tmp / "serve.log"
    grasp_guard = Path(sys.executable).with_name("grasp-guard")
    command = [str(grasp_guard)] if grasp_guard.exists() else [sys.executable, "-m", "grasp_guard"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "-v", "serve", "--port", str(port), "--device", "cpu"],
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "GRASP_GUARD_TOKEN": TOKEN},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_S
    while not _ready(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the service did not become ready:\n{log.read_text()}")
        time.sleep(0.2)
    return Served(url, process, log)


def _stop(served: Served) -> int:
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
    try:
        return served.process.wait(30)
    except subprocess.TimeoutExpired:
        served.process.kill()
        raise


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = _serve(tmp_path_factory.mktemp("serve"))
    try:
        yield served
    finally:
        _stop(served)


def test_sync_client_gets_a_faceless_image_back_unchanged(served: Served,
                                                          noface_png: bytes) -> None:
    with SyncGraspClient(served.url, token=TOKEN) as client:
        result = client.protect(noface_png, ProtectOptions(preset="fast"))
    assert result.data == noface_png and result.content_type == "image/png"
    assert result.protected is False and result.report["faces"] == 0


async def test_async_client_sees_service_errors(served: Served) -> None:
    async with GraspClient(served.url, token=TOKEN, max_retries=0) as client:
        with pytest.raises(ServiceError) as err:
            await client.protect(b"not an image at all", content_type="image/jpeg")
    assert (err.value.status, err.value.kind) == (400, "invalid_image")
    async with GraspClient(served.url, token="wrong", max_retries=0) as client:
        with pytest.raises(ServiceError) as err:
            await client.protect(b"\xff\xd8\xff", content_type="image/jpeg")
    assert (err.value.status, err.value.kind) == (401, "unauthorized")


def test_public_bind_without_token_refuses_to_start(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("GRASP_GUARD_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 1
    assert "requires a bearer token" in capsys.readouterr().err


@pytest.mark.slow
async def test_async_client_protects_a_face_and_sigterm_lets_it_finish(
        tmp_path: Path, face_jpeg: bytes) -> None:
    served = await asyncio.to_thread(_serve, tmp_path)
    try:
        async with GraspClient(served.url, token=TOKEN, max_retries=0) as client:
            result = await client.protect(face_jpeg, ProtectOptions(preset="fast"))
            assert result.protected and result.report["faces"] == 1
            assert result.content_type == "image/jpeg"
            out = Image.open(io.BytesIO(result.data))
            assert out.size == Image.open(io.BytesIO(face_jpeg)).size
            # A request in flight when SIGTERM arrives still gets its protected image.
            in_flight = asyncio.create_task(client.protect(face_jpeg, ProtectOptions(preset="fast")))
            await asyncio.sleep(2.0)
            served.process.send_signal(signal.SIGTERM)
            late = await in_flight
            assert late.protected and late.data[:3] == b"\xff\xd8\xff"
        assert await asyncio.to_thread(served.process.wait, 60) == 0
    finally:
        _stop(served)
