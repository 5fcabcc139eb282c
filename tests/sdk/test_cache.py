"""The LRU of protected images: bounds, recency, and one call for concurrent duplicates."""

from __future__ import annotations

import asyncio

import pytest
from grasp_sdk import ProtectCache, ProtectOptions, ProtectResult

OPTIONS = ProtectOptions()


class Counting:
    def __init__(self, gate: asyncio.Event | None = None, fail: bool = False) -> None:
        self.calls = 0
        self.gate = gate
        self.fail = fail

    async def __call__(self, data: bytes, options: ProtectOptions) -> ProtectResult:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("down")
        return ProtectResult(data + b"+", "image/jpeg", {"protected": True})


async def test_hit_miss_and_options_in_the_key() -> None:
    cache, protect = ProtectCache(), Counting()
    assert (await cache.protect(b"a", OPTIONS, protect))[1] is False
    result, hit = await cache.protect(b"a", OPTIONS, protect)
    assert hit and result.data == b"a+" and protect.calls == 1
    await cache.protect(b"a", ProtectOptions(preset="strong"), protect)
    assert protect.calls == 2


async def test_a_protected_image_is_its_own_result() -> None:
    # a body the adapter protected, sent again (a redirect's repeat): not protected twice
    cache, protect = ProtectCache(), Counting()
    first, _ = await cache.protect(b"a", OPTIONS, protect)
    again, hit = await cache.protect(first.data, OPTIONS, protect)
    assert hit and again.data == b"a+" and protect.calls == 1
    assert cache.protect_sync(b"a+", OPTIONS, protect)[0].data == b"a+" and protect.calls == 1
    # under pressure the original's entry stays: a retry is the common case
    for small in (ProtectCache(max_entries=1), ProtectCache(max_bytes=25)):
        counting = Counting()
        await small.protect(b"0123456789", OPTIONS, counting)
        assert (await small.protect(b"0123456789", OPTIONS, counting))[1]
        assert counting.calls == 1


async def test_lru_eviction_by_count_and_bytes() -> None:
    cache, protect = ProtectCache(max_entries=3, max_bytes=1000), Counting()
    for key in (b"a", b"b", b"a", b"c"):  # "a" used again, so "b" is the oldest
        await cache.protect(key, OPTIONS, protect)
    assert len(cache) == 3  # a, c and c protected: a protected image's own entry goes first
    assert (await cache.protect(b"a", OPTIONS, protect))[1]
    assert not (await cache.protect(b"b", OPTIONS, protect))[1]
    small = ProtectCache(max_bytes=10)
    await small.protect(b"x" * 20, OPTIONS, protect)  # larger than the whole cache
    assert len(small) == 0


async def test_concurrent_duplicates_share_one_call() -> None:
    cache, gate = ProtectCache(), asyncio.Event()
    protect = Counting(gate)
    tasks = [asyncio.create_task(cache.protect(b"img", OPTIONS, protect)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    outcomes = await asyncio.gather(*tasks)
    assert protect.calls == 1
    assert [hit for _, hit in outcomes] == [False, True, True]


async def test_failures_are_not_cached() -> None:
    cache, protect = ProtectCache(), Counting(fail=True)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await cache.protect(b"img", OPTIONS, protect)
    assert protect.calls == 2 and len(cache) == 0


async def _owner_and_waiter(protect: Counting) -> tuple[asyncio.Task, asyncio.Task]:
    """A call in flight (the owner) and a second caller of the same image waiting on it."""
    cache = ProtectCache()
    owner = asyncio.create_task(cache.protect(b"img", OPTIONS, protect))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(cache.protect(b"img", OPTIONS, protect))
    await asyncio.sleep(0)
    return owner, waiter


async def test_a_cancelled_owner_hands_over() -> None:
    gate = asyncio.Event()
    protect = Counting(gate)
    owner, waiter = await _owner_and_waiter(protect)
    owner.cancel()
    await asyncio.sleep(0)
    gate.set()
    result, hit = await waiter
    assert result.data == b"img+" and not hit and protect.calls == 2
    with pytest.raises(asyncio.CancelledError):
        await owner


async def test_a_waiter_cancelled_with_its_owner_stays_cancelled() -> None:
    # its own deadline (asyncio.timeout) fired as the owner was cancelled: it must not
    # take over and call the service past that deadline
    gate = asyncio.Event()
    protect = Counting(gate)
    owner, waiter = await _owner_and_waiter(protect)
    owner.cancel()
    waiter.cancel()
    await asyncio.sleep(0)
    gate.set()
    for task in (owner, waiter):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert protect.calls == 1


def test_bounds_validated() -> None:
    with pytest.raises(ValueError, match="positive"):
        ProtectCache(max_entries=0)


def test_sync_callers_share_the_entries() -> None:
    cache, calls = ProtectCache(max_entries=2), []

    def protect(data: bytes, options: ProtectOptions) -> ProtectResult:
        calls.append(data)
        if data == b"bad":
            raise ConnectionError("down")
        return ProtectResult(data + b"+", "image/jpeg", {"protected": True})

    assert cache.protect_sync(b"a", OPTIONS, protect) == (
        ProtectResult(b"a+", "image/jpeg", {"protected": True}), False)
    assert cache.protect_sync(b"a", OPTIONS, protect)[1] is True
    for _ in range(2):
        with pytest.raises(ConnectionError):
            cache.protect_sync(b"bad", OPTIONS, protect)
    assert calls == [b"a", b"bad", b"bad"] and len(cache) == 2  # a, and a protected


async def test_sync_and_async_callers_share_one_cache() -> None:
    cache, protect = ProtectCache(), Counting()
    await cache.protect(b"a", OPTIONS, protect)

    def never(data: bytes, options: ProtectOptions) -> ProtectResult:
        raise AssertionError("a cached image was protected again")

    result, hit = await asyncio.to_thread(cache.protect_sync, b"a", OPTIONS, never)
    assert hit and result.data == b"a+" and protect.calls == 1
