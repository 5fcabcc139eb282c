"""The load bench's memory watch: the tree's memory over the run, not only its peak."""

from __future__ import annotations

import asyncio
import os

from service_load import MemoryWatch


def test_every_shows_the_first_sample_of_each_span() -> None:
    watch = MemoryWatch(os.getpid())
    watch.totals = [(0.0, 100.0), (1.1, 150.0), (9.9, 190.0), (10.2, 200.0), (25.0, 210.0)]
    assert watch.every(10) == "0: 100, 10: 200, 25: 210"


async def test_it_samples_this_process_tree() -> None:
    watch = MemoryWatch(os.getpid())
    watch.start()
    while not watch.totals:
        await asyncio.sleep(0.01)
    await watch.stop()
    assert watch.peak_total == watch.totals[0][1] > 0
    assert watch.peak_processes >= 1


def test_the_load_seen_while_sampling() -> None:
    watch = MemoryWatch(os.getpid())
    assert watch.load_span() == "n/a"
    watch.loads = [2.25, 0.5, 3.0]
    assert watch.load_span() == "0.5–3.0"
