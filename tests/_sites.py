"""Local fake sites for the tests: an aiohttp app served from a thread of its own.

A site runs its own event loop in a thread, so that synchronous clients (requests, httpx,
curl) and asynchronous tests alike can send to it and read what it recorded. Subclasses
add their routes; :class:`Arrivals` lets a test wait for what arrived under a key.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Generic, Self, TypeVar

from aiohttp import web

T = TypeVar("T")
START_TIMEOUT_S = 10


class ThreadedSite:
    """An aiohttp app on 127.0.0.1 and a free port, served from a thread.

    Args:
        ssl_context: serve HTTPS with it; None serves plain HTTP.
        client_max_size: the largest request body the app reads.

    Attributes:
        port: the port it listens on, once started.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None,
                 client_max_size: int = 2**20) -> None:
        self._ssl = ssl_context
        self._client_max_size = client_max_size
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self.port = 0

    def routes(self, app: web.Application) -> None:
        """Add the site's routes to ``app``."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise RuntimeError("the site did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_TIMEOUT_S)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=self._client_max_size)
        self.routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self._ssl).start()
        self.port = runner.addresses[0][1]
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()


class Arrivals(Generic[T]):
    """What a site received, by key (a test id), for tests in other threads to wait on."""

    def __init__(self) -> None:
        self._items: dict[str, T] = {}
        self._arrived = threading.Condition()

    def put(self, key: str, item: T) -> None:
        with self._arrived:
            self._items[key] = item
            self._arrived.notify_all()

    def wait(self, key: str, timeout_s: float) -> T:
        """What arrived under ``key``, waiting up to ``timeout_s``; fails the test else."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: key in self._items, timeout_s):
                raise AssertionError(f"the site received nothing for {key!r}")
            return self._items[key]

    def __contains__(self, key: str) -> bool:
        with self._arrived:
            return key in self._items
