"""Headless Chromium driven over the DevTools protocol (a websocket per page, with aiohttp),
for the browser tests: the proxy's (tests/e2e/test_browser.py) and the extension's.

Besides calls and scripts: a file put in an ``<input type=file>`` (``DOM.setFileInputFiles``,
which fires trusted ``input`` and ``change`` as a real choice does), a file dropped on an
element (``Input.dispatchDragEvent``, trusted too), and a Chromium with an extension loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp

from proxy_addon.launch import child

CHROMIUM = Path("/usr/bin/chromium")


class Page:
    """One tab's DevTools session."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        await self._ws.send_json({"id": call_id, "method": method, "params": params})
        async for message in self._ws:
            reply = json.loads(message.data)
            if reply.get("id") == call_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return dict(reply["result"])
        raise AssertionError(f"the browser closed the connection during {method}")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                                 returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.2)
        raise AssertionError(f"still false after {timeout_s:.0f} s: {expression}")

    async def open(self, url: str, ready: str = "true") -> None:
        await self.call("Page.navigate", url=url)
        await self.wait_for(f"document.readyState === 'complete' && location.href === {json.dumps(url)} "
                            f"&& ({ready})", 60)

    async def choose_file(self, selector: str, path: Path) -> None:
        """The user picks ``path`` in the file input at ``selector``."""
        await self.choose_file_in(f"document.querySelector({json.dumps(selector)})", path)

    async def choose_file_in(self, expression: str, path: Path) -> None:
        """The user picks ``path`` in the file input ``expression`` evaluates to (one outside
        the document too)."""
        found = await self.call("Runtime.evaluate", expression=expression)
        await self.call("DOM.setFileInputFiles", files=[str(path)],
                        objectId=found["result"]["objectId"])

    async def _centre(self, selector: str) -> tuple[float, float]:
        x, y = await self.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                                   ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        return x, y

    async def drop_file(self, selector: str, path: Path) -> None:
        """The user drags ``path`` from the desktop and drops it on the element at ``selector``."""
        x, y = await self._centre(selector)
        data = {"items": [], "files": [str(path)], "dragOperationsMask": 1}
        for kind in ("dragEnter", "dragOver", "drop"):
            await self.call("Input.dispatchDragEvent", type=kind, x=x, y=y, data=data)

    async def click(self, selector: str) -> None:
        """The user clicks the element at ``selector`` (a trusted click)."""
        x, y = await self._centre(selector)
        for kind in ("mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                            clickCount=1)

    async def notices(self) -> list[dict[str, str]]:
        """The extension's notices on the page: level and text."""
        return list(await self.evaluate(
            "[...document.querySelectorAll('grasp-guard-notice')].map((n) => "
            "({level: n.dataset.level, text: n.getAttribute('aria-label')}))"))


class Browser:
    """A running Chromium; ``page()`` opens a tab and drives it."""

    def __init__(self, port: int) -> None:
        self.port = port

    @contextlib.asynccontextmanager
    async def page(self, url: str = "about:blank") -> AsyncIterator[Page]:
        timeout = aiohttp.ClientTimeout(total=900)
        base = f"http://127.0.0.1:{self.port}"
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.put(f"{base}/json/new?{url}") as resp:
                target = await resp.json()
            try:
                async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    yield Page(ws)
            finally:
                async with session.get(f"{base}/json/close/{target['id']}") as resp:
                    await resp.read()


def devtools_port(profile: Path, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> int:
    """The port Chromium chose for DevTools (it writes it to DevToolsActivePort)."""
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"chromium exited with status {proc.returncode}"
        if active.exists() and active.read_text().strip():
            return int(active.read_text().split()[0])
        time.sleep(0.1)
    raise AssertionError("chromium opened no DevTools port")


@contextlib.contextmanager
def chromium_with(extension: Path, folder: Path) -> Iterator[Browser]:
    """Headless Chromium (``--headless=new``: the old headless mode loads no extensions)
    with ``extension`` loaded unpacked, and no other."""
    profile = folder / "profile"
    argv = [str(CHROMIUM), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
            f"--load-extension={extension}", f"--disable-extensions-except={extension}",
            "about:blank"]
    with (folder / "chromium.log").open("wb") as log, \
            child(argv, stdout=log, stderr=subprocess.STDOUT) as proc:
        try:
            yield Browser(devtools_port(profile, proc))
        finally:
            if proc.poll() is None:  # its renderers share its process group
                os.killpg(proc.pid, signal.SIGTERM)
