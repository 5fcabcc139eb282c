"""A blocking wrapper of :class:`GraspClient` for synchronous code.

The wrapper runs its own event loop in a background thread and hands each call to it, so
it works from plain synchronous code and also from a thread whose event loop is running
(a sync callback inside an async application) — there it blocks that loop until the call
returns, so async code should use :class:`GraspClient` directly. Calling it from its own
loop's thread (e.g. from a ``protect`` callback it runs) would deadlock and raises
RuntimeError instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from grasp_sdk.client import GraspClient
from grasp_sdk.options import ProtectOptions
from grasp_sdk.result import ProtectResult

T = TypeVar("T")


class SyncGraspClient:
    """Blocking client; takes :class:`GraspClient`'s arguments except ``session``.

    Use as a context manager, or call :meth:`close` to stop its thread.
    """

    def __init__(self, endpoints: str | Sequence[str], **kwargs: Any) -> None:
        if "session" in kwargs:
            raise TypeError("SyncGraspClient opens its own session in its own loop")
        self._client = GraspClient(endpoints, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name="grasp-sdk-loop", daemon=True)
        self._thread.start()
        self._closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("the client is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("SyncGraspClient called from its own event loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def protect(self, data: bytes, options: ProtectOptions | None = None, *,
                content_type: str | None = None) -> ProtectResult:
        """Blocking :meth:`GraspClient.protect`."""
        return self._run(self._client.protect(data, options, content_type=content_type))

    def protect_bytes(self, data: bytes, *, content_type: str | None = None,
                      **options: Any) -> ProtectResult:
        """Blocking :meth:`GraspClient.protect_bytes`."""
        return self._run(self._client.protect_bytes(data, content_type=content_type,
                                                    **options))

    def ready(self) -> bool:
        """Blocking :meth:`GraspClient.ready`."""
        return self._run(self._client.ready())

    def close(self) -> None:
        """Close the session, stop the loop and join its thread (idempotent)."""
        if self._closed:
            return
        self._run(self._client.close())
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
