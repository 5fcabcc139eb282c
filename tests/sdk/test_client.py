"""The service client against real aiohttp servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from grasp_sdk import (
    GraspClient,
    ProtectOptions,
    ProtectTimeout,
    ServiceError,
    ServiceUnavailable,
    SyncGraspClient,
)


def protected(body: bytes, content_type: str) -> web.Response:
    return web.Response(body=body[::-1], content_type=content_type,
                        headers={"X-Grasp-Report": json.dumps({"faces": 1, "protected": True})})


def error(status: int, kind: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": {"kind": kind, "message": message}}, status=status,
                             headers=headers)


class Service:
    """A scripted stand-in for the protection service; records what it received."""

    def __init__(self, *script: Callable[[], web.Response] | None) -> None:
        self.script = list(script)  # one entry per request; None = answer normally
        self.requests: list[tuple[dict[str, str], dict[str, str], bytes]] = []
        self.readiness_headers: list[dict[str, str]] = []

    async def protect(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.query), dict(request.headers), body))
        step = self.script.pop(0) if self.script else None
        if step is not None:
            return step()
        return protected(body, request.content_type)

    async def readyz(self, request: web.Request) -> web.Response:
        self.readiness_headers.append(dict(request.headers))
        return web.Response(text="ready")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/protect", self.protect)
        app.router.add_get("/readyz", self.readyz)
        return app


def free_port_url() -> str:
    """A URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def serve(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
) -> Callable[[Service], Awaitable[str]]:
    async def start(service: Service) -> str:
        server = await aiohttp_server(service.app())
        return str(server.make_url("")).rstrip("/")
    return start


async def test_protect_sends_options_token_and_type(serve, jpeg: bytes) -> None:
    service = Service()
    async with GraspClient(await serve(service), token="s3cret") as client:
        result = await client.protect_bytes(jpeg, preset="strong", site="instagram",
                                            site_jpeg_quality=70)
    assert result.data == jpeg[::-1] and result.protected
    assert result.content_type == "image/jpeg" and result.report["faces"] == 1
    query, headers, body = service.requests[0]
    assert body == jpeg
    assert query == {"preset": "strong", "site": "instagram", "site_jpeg_quality": "70"}
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Content-Type"] == "image/jpeg"  # sniffed


async def test_429_with_retry_after_is_retried(serve, jpeg: bytes) -> None:
    service = Service(lambda: error(429, "busy", "queue full", **{"Retry-After": "0.3"}))
    async with GraspClient(await serve(service), backoff_base=0.01) as client:
        start = time.monotonic()
        result = await client.protect(jpeg)
    assert result.data == jpeg[::-1] and len(service.requests) == 2
    assert time.monotonic() - start >= 0.3


async def test_retry_after_is_capped(serve, jpeg: bytes) -> None:
    service = Service(lambda: error(503, "loading", "models loading", **{"Retry-After": "60"}))
    async with GraspClient(await serve(service), max_retry_after=0.05,
                           backoff_base=0.01) as client:
        start = time.monotonic()
        await client.protect(jpeg)
    assert time.monotonic() - start < 5


async def test_failover_to_the_next_endpoint(serve, jpeg: bytes) -> None:
    busy, good = Service(lambda: error(503, "busy", "draining")), Service()
    endpoints = [free_port_url(), await serve(busy), await serve(good)]
    async with GraspClient(endpoints, backoff_base=0.01) as client:
        result = await client.protect(jpeg)
    assert result.data == jpeg[::-1]
    assert len(busy.requests) == 1 and len(good.requests) == 1


async def test_unavailable_after_the_retries(serve, jpeg: bytes) -> None:
    service = Service(*[lambda: error(503, "busy", "full")] * 3)
    async with GraspClient([await serve(service), free_port_url()], max_retries=2,
                           backoff_base=0.01) as client:
        with pytest.raises(ServiceUnavailable, match="3 round"):
            await client.protect(jpeg)
    assert len(service.requests) == 3


async def test_retry_after_past_the_budget_gives_up_at_once(serve, jpeg: bytes) -> None:
    service = Service(lambda: error(429, "busy", "full", **{"Retry-After": "30"}))
    async with GraspClient(await serve(service), total_timeout=1.0) as client:
        with pytest.raises(ServiceUnavailable, match="past the time budget"):
            await client.protect(jpeg)


@pytest.mark.parametrize(("response", "kind", "status"), [
    (lambda: error(400, "invalid_image", "not an image"), "invalid_image", 400),
    (lambda: web.Response(status=500, text="boom"), "http_500", 500),
    (lambda: error(504, "deadline_exceeded", "too slow"), "deadline_exceeded", 504),
    (lambda: web.Response(body=b"x", content_type="image/jpeg"), "bad_response", 200),
])
async def test_service_errors_are_typed_and_not_retried(serve, jpeg: bytes, response,
                                                        kind: str, status: int) -> None:
    service = Service(response)
    async with GraspClient(await serve(service)) as client:
        with pytest.raises(ServiceError) as info:
            await client.protect(jpeg)
    assert (info.value.kind, info.value.status) == (kind, status)
    assert len(service.requests) == 1


async def test_total_timeout(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]], jpeg: bytes,
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    app = web.Application()
    app.router.add_post("/v1/protect", slow)
    server = await aiohttp_server(app)
    async with GraspClient(str(server.make_url("")), total_timeout=0.2) as client:
        start = time.monotonic()
        with pytest.raises(ProtectTimeout):
            await client.protect(jpeg)
    assert time.monotonic() - start < 2


async def test_ready_and_injected_session(serve) -> None:
    url = await serve(Service())
    async with aiohttp.ClientSession() as session:
        client = GraspClient([free_port_url(), url], session=session)
        assert await client.ready()
        await client.close()
        assert not session.closed  # an injected session is the caller's to close
        assert not await GraspClient(free_port_url(), session=session).ready()


@pytest.fixture
def threaded_service() -> Iterator[tuple[str, Service]]:
    """The scripted service in its own thread and loop, for the blocking client."""
    service, loop = Service(), asyncio.new_event_loop()
    server = TestServer(service.app(), loop=loop)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start_server(), loop).result(10)
    yield str(server.make_url("")), service
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


def test_sync_client(threaded_service: tuple[str, Service], jpeg: bytes) -> None:
    url, service = threaded_service
    with SyncGraspClient(url) as client:
        assert client.ready()
        assert client.protect(jpeg, ProtectOptions(size_mode="max")).data == jpeg[::-1]
        assert client.protect_bytes(jpeg, preset="fast").protected
    assert [q for q, _, _ in service.requests] == [{"size_mode": "max"}, {"preset": "fast"}]
    with pytest.raises(RuntimeError, match="closed"):
        client.protect(jpeg)


async def test_sync_client_inside_a_running_loop(threaded_service: tuple[str, Service],
                                                 jpeg: bytes) -> None:
    """Callable from a thread whose loop runs (it blocks that loop while it waits)."""
    url, _ = threaded_service
    with SyncGraspClient(url) as client:
        assert client.protect(jpeg).data == jpeg[::-1]


async def test_ready_sends_the_token(serve) -> None:
    service = Service()
    async with GraspClient(await serve(service), token="s3cret") as client:
        assert await client.ready()
    assert service.readiness_headers[-1]["Authorization"] == "Bearer s3cret"


class CutShort(Service):
    """A service whose first answer stops short of its Content-Length (a replica that died)."""

    async def protect(self, request: web.Request) -> web.StreamResponse:
        if self.requests:
            return await super().protect(request)
        self.requests.append((dict(request.query), dict(request.headers), await request.read()))
        answer = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        answer.content_length = 1000
        await answer.prepare(request)
        await answer.write(b"\xff\xd8\xff" + bytes(7))
        assert request.transport is not None
        request.transport.close()
        return answer


async def test_an_answer_cut_short_is_retried(serve, jpeg: bytes) -> None:
    service = CutShort()
    async with GraspClient([await serve(service)], backoff_base=0.01) as client:
        result = await client.protect(jpeg)
    assert result.data == jpeg[::-1] and len(service.requests) == 2
