"""A bounded in-memory LRU of protected images, so a retried upload is not protected twice.

Keyed by the SHA-256 of the original image and the options; a protected image is its own
entry too (protected already: it goes as it is), so a body the adapter itself protected,
sent again (a redirect's repeat), is not protected twice. Concurrent requests for the same
key share one call to the service (a client that retries while the first attempt is
still in flight does not start a second optimisation). Synchronous callers (threads) share
the entries through :meth:`ProtectCache.protect_sync`, though not the calls in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import OrderedDict

from grasp_sdk.options import ProtectOptions
from grasp_sdk.result import ProtectFn, ProtectResult, SyncProtectFn

logger = logging.getLogger(__name__)

_Key = tuple[bytes, ProtectOptions]


class ProtectCache:
    """LRU of :class:`ProtectResult` bounded by entry count and total bytes.

    Args:
        max_entries: the most entries kept (a protected image is two: its original's and its
            own).
        max_bytes: the most bytes of original plus protected images kept.
    """

    def __init__(self, max_entries: int = 256, max_bytes: int = 256 * 2**20) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError(f"cache bounds must be positive, got {max_entries}, {max_bytes}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[_Key, tuple[ProtectResult, int]] = OrderedDict()
        self._bytes = 0
        self._inflight: dict[_Key, asyncio.Future[ProtectResult]] = {}
        # The entries, not the calls in flight: threads of synchronous clients share them.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    async def protect(self, data: bytes, options: ProtectOptions,
                      protect: ProtectFn) -> tuple[ProtectResult, bool]:
        """The cached result for ``(data, options)``, or ``await protect(data, options)``.

        Returns:
            The result and whether it came from the cache (or a call already in flight).
        """
        key = _key(data, options)
        while key not in self._entries and key in self._inflight:
            pending = self._inflight[key]
            try:
                return await asyncio.shield(pending), True
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise  # this caller was cancelled (its own deadline), not only the owner
                # The caller that owned the call was cancelled: take over.
        cached = self._lookup(key)
        if cached is not None:
            return cached, True
        future: asyncio.Future[ProtectResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await protect(data, options)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: there may be no other waiter
            raise
        finally:
            del self._inflight[key]
        future.set_result(result)
        self._store(key, data, result)
        return result, False

    def protect_sync(self, data: bytes, options: ProtectOptions,
                     protect: SyncProtectFn) -> tuple[ProtectResult, bool]:
        """Blocking :meth:`protect`: the cached result, or ``protect(data, options)``.

        Threads share the entries but not the calls in flight: two threads protecting the
        same new image at once each call ``protect``.
        """
        key = _key(data, options)
        cached = self._lookup(key)
        if cached is not None:
            return cached, True
        result = protect(data, options)
        self._store(key, data, result)
        return result, False

    def _lookup(self, key: _Key) -> ProtectResult | None:
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key][0]

    def _store(self, key: _Key, data: bytes, result: ProtectResult) -> None:
        """Keep ``result`` for ``key`` (the original ``data``), and the protected image as
        its own result: that one first, so that under pressure it goes before the original's
        (a retry of the original is the common case)."""
        if result.data != data:
            self._keep(_key(result.data, key[1]), result, len(result.data))
        self._keep(key, result, len(data) + len(result.data))

    def _keep(self, key: _Key, result: ProtectResult, size: int) -> None:
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:  # another thread stored it meanwhile
                return
            self._entries[key] = (result, size)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted


def _key(data: bytes, options: ProtectOptions) -> _Key:
    return hashlib.sha256(data).digest(), options
