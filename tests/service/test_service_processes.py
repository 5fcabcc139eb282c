"""Descendants of a process from /proc: children and grandchildren, with their command lines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from grasp_guard.service.processes import cpu_seconds, descendants, rss_mib

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_descendants_reach_grandchildren_and_nothing_else() -> None:
    child = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    grandchildren: list[int] = []
    try:
        for _ in range(100):
            below = descendants(os.getpid())
            grandchildren = [pid for pid, c in below.items() if c == "sleep 30"]
            if grandchildren:
                break
            time.sleep(0.05)
        assert child.pid in below and below[child.pid].startswith("sh -c")
        assert len(grandchildren) == 1 and grandchildren[0] != child.pid
        assert os.getpid() not in below and os.getppid() not in below
        assert descendants(child.pid).keys() == set(grandchildren)
    finally:
        for pid in grandchildren:
            os.kill(pid, signal.SIGKILL)
        child.kill()
        child.wait()


def test_rss_of_a_live_and_an_ended_process() -> None:
    assert rss_mib(os.getpid()) > 1
    ended = subprocess.Popen(["true"])
    ended.wait()
    assert rss_mib(ended.pid) == 0.0


def test_cpu_seconds_grow_with_work_and_an_ended_process_raises() -> None:
    before = cpu_seconds(os.getpid())
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    assert cpu_seconds(os.getpid()) >= before + 0.1
    ended = subprocess.Popen(["true"])
    ended.wait()
    with pytest.raises(OSError):
        cpu_seconds(ended.pid)
