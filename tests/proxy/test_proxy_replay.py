"""Held segments sent through mitmproxy's client replay: one given up on never goes out."""

from __future__ import annotations

import asyncio

import pytest
from mitmproxy import http
from mitmproxy.addons.clientplayback import ClientPlayback
from mitmproxy.test import taddons, tflow

from proxy_addon.addon import GraspGuard


async def test_a_segment_given_up_on_is_answered_by_the_proxy_when_its_replay_comes() -> None:
    addon, playback = GraspGuard(), ClientPlayback()
    with taddons.context(playback, addon):
        flow = tflow.tflow(req=http.Request.make(
            "POST", "https://upload.x.com/i/media/upload.json", b"segment"))
        flow.live = False
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):  # as chunked._send waits, timeout_s
                await addon._replayer(flow)
        assert playback.count() == 1  # mitmproxy still has it queued
        flow.live = True  # its replay, later, reaches the hooks
        addon.requestheaders(flow)
        assert flow.response is not None and flow.response.status_code == 504
        assert not addon._replayer.owns(flow)  # and only that once
