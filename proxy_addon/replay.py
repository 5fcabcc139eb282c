"""Send a request the proxy makes itself, and wait for the site's answer.

The segments of a split upload that the proxy held (and answered itself) reach the site
later, as new requests. They go through mitmproxy's client replay, so that they take the
same way out as any request: upstream mode, TLS settings, trusted CAs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from mitmproxy import ctx, http

#: Sends a flow that is not live to the site; on return its ``response`` or ``error`` is set.
Forward = Callable[[http.HTTPFlow], Awaitable[None]]


class Replayer:
    """Sends flows with mitmproxy's ``replay.client`` command.

    The owning addon calls :meth:`settle` from its ``response`` and ``error`` hooks, and
    leaves the flows :meth:`owns` alone in its other hooks.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._given_up: set[str] = set()

    def owns(self, flow: http.HTTPFlow) -> bool:
        """Whether ``flow`` is one this replayer sent (and waits for, or gave up on)."""
        return flow.id in self._waiting or flow.id in self._given_up

    def given_up(self, flow: http.HTTPFlow) -> bool:
        """Whether ``flow`` is one this replayer stopped waiting for before it was sent: the
        client was told it failed, so it must not reach the site after all."""
        if flow.id not in self._given_up:
            return False
        self._given_up.discard(flow.id)
        return True

    async def __call__(self, flow: http.HTTPFlow) -> None:
        answered = asyncio.get_running_loop().create_future()
        self._waiting[flow.id] = answered
        try:
            ctx.master.commands.call("replay.client", [flow])
            await answered
        except BaseException:  # a timeout or a cancellation: it may still wait in the queue
            if answered.cancelled() or not answered.done():  # no answer came
                self._given_up.add(flow.id)
            raise
        finally:
            del self._waiting[flow.id]

    def settle(self, flow: http.HTTPFlow) -> None:
        """``flow`` got its answer (or its error)."""
        answered = self._waiting.get(flow.id)
        if answered is not None and not answered.done():
            answered.set_result(None)
