"""Async client of the protection service (``POST /v1/protect``).

Several endpoints are tried in turn when one is unreachable or answers 429 (queue full),
502 or 503; when every endpoint refused, the client backs off (exponentially, with full
jitter, or as ``Retry-After`` says, capped) and goes round again, within one total time
budget. A 504 (the service ran out of time while optimising) is not retried: another try
would most likely spend the same time again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import aiohttp

from grasp_sdk.errors import ProtectTimeout, ServiceError, ServiceUnavailable
from grasp_sdk.options import ProtectOptions
from grasp_sdk.result import ProtectResult
from grasp_sdk.sniff import image_type

logger = logging.getLogger(__name__)

REPORT_HEADER = "X-Grasp-Report"
_BUSY = {429, 502, 503}


class _Refused(Exception):
    """Internal: one endpoint could not take the image now; try another or later."""

    def __init__(self, why: str, retry_after: float | None = None) -> None:
        super().__init__(why)
        self.retry_after = retry_after


class GraspClient:
    """Client of one or more protection service endpoints.

    Args:
        endpoints: a base URL (``http://127.0.0.1:8765``) or several, tried in order.
        token: a bearer token sent as ``Authorization: Bearer <token>``.
        session: an aiohttp session to use (and not close); by default the client opens
            its own on first use and closes it in :meth:`close`.
        connect_timeout: seconds to connect to one endpoint before trying the next.
        total_timeout: seconds for one :meth:`protect` call, retries and waits included.
        max_retries: rounds over all endpoints after the first, when all refused.
        backoff_base: the first backoff (seconds); doubles each round, with full jitter.
        backoff_max: the longest backoff between rounds (seconds).
        max_retry_after: the longest ``Retry-After`` honoured (seconds).
    """

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
        connect_timeout: float = 5.0,
        total_timeout: float = 120.0,
        max_retries: int = 4,
        backoff_base: float = 0.25,
        backoff_max: float = 10.0,
        max_retry_after: float = 30.0,
    ) -> None:
        self.endpoints = (endpoints,) if isinstance(endpoints, str) else tuple(endpoints)
        if not self.endpoints:
            raise ValueError("at least one endpoint is required")
        if connect_timeout <= 0 or total_timeout <= 0 or max_retries < 0:
            raise ValueError("timeouts must be positive and max_retries non-negative")
        self.token = token
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if the client opened it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def protect_bytes(self, data: bytes, *, content_type: str | None = None,
                            **options: Any) -> ProtectResult:
        """Protect one image; ``options`` are :class:`ProtectOptions` fields."""
        return await self.protect(data, ProtectOptions(**options), content_type=content_type)

    async def protect(self, data: bytes, options: ProtectOptions | None = None, *,
                      content_type: str | None = None) -> ProtectResult:
        """Protect one image.

        Args:
            data: the image bytes.
            options: how to protect it (defaults: :class:`ProtectOptions`).
            content_type: the image's media type; sniffed from the bytes when omitted.

        Returns:
            The protected image, its media type and the service's report. An image without
            a face comes back byte-identical with ``report["protected"] == False``.

        Raises:
            ServiceError: the service rejected the image (the error it named).
            ServiceUnavailable: no endpoint took it within the retries.
            ProtectTimeout: the total time budget ran out.
        """
        options = options or ProtectOptions()
        content_type = content_type or image_type(data) or "application/octet-stream"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout
        for round_ in range(self.max_retries + 1):
            refusals: list[_Refused] = []
            for endpoint in self.endpoints:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise ProtectTimeout(f"no result within {self.total_timeout:g} s")
                try:
                    return await self._post(endpoint, data, options, content_type, remaining)
                except _Refused as refused:
                    logger.info("endpoint %s refused: %s", endpoint, refused)
                    refusals.append(refused)
            if round_ == self.max_retries:
                break
            delay = self._delay(round_, [r.retry_after for r in refusals])
            if loop.time() + delay >= deadline:
                raise ServiceUnavailable(
                    f"all endpoints refused and the next try ({delay:.1f} s) is past the "
                    f"time budget: {refusals[-1]}")
            await asyncio.sleep(delay)
        raise ServiceUnavailable(
            f"all endpoints refused after {self.max_retries + 1} round(s): {refusals[-1]}")

    def _delay(self, round_: int, retry_after: list[float | None]) -> float:
        hints = [h for h in retry_after if h is not None]
        if hints:
            return min(min(hints), self.max_retry_after) + random.uniform(0, self.backoff_base)
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2**round_))

    async def _post(self, endpoint: str, data: bytes, options: ProtectOptions,
                    content_type: str, remaining: float) -> ProtectResult:
        headers = {"Content-Type": content_type}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        timeout = aiohttp.ClientTimeout(total=remaining,
                                        connect=min(self.connect_timeout, remaining))
        url = endpoint.rstrip("/") + "/v1/protect"
        try:
            async with self._get_session().post(url, data=data, params=options.to_params(),
                                                headers=headers, timeout=timeout) as resp:
                body = await resp.read()
                if resp.status in _BUSY:
                    raise _Refused(f"HTTP {resp.status}", _retry_after(resp.headers))
                if resp.status != 200:
                    raise _service_error(resp.status, body)
                return ProtectResult(body, resp.headers.get("Content-Type", content_type),
                                     _report(resp.headers.get(REPORT_HEADER)))
        except aiohttp.ConnectionTimeoutError as exc:
            raise _Refused(f"{url}: connect timeout") from exc
        except TimeoutError as exc:
            raise ProtectTimeout(f"no result within {self.total_timeout:g} s") from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            # no answer, or one cut short (a replica that died mid-reply): try again
            raise _Refused(f"{url}: {type(exc).__name__}: {exc}") from exc

    async def ready(self) -> bool:
        """Whether any endpoint answers ``GET /readyz`` with 200."""
        timeout = aiohttp.ClientTimeout(total=self.connect_timeout)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        for endpoint in self.endpoints:
            try:
                async with self._get_session().get(endpoint.rstrip("/") + "/readyz",
                                                   timeout=timeout, headers=headers) as resp:
                    if resp.status == 200:
                        return True
            except (aiohttp.ClientError, TimeoutError) as exc:
                logger.info("endpoint %s not ready: %s", endpoint, exc)
        return False


def _retry_after(headers: Any) -> float | None:
    """``Retry-After`` in seconds (the delta form; an HTTP date counts as absent)."""
    try:
        return max(0.0, float(headers.get("Retry-After", "")))
    except ValueError:
        return None


def _report(header: str | None) -> dict[str, Any]:
    try:
        report = json.loads(header or "")
    except ValueError:
        report = None
    if not isinstance(report, dict):
        raise ServiceError("bad_response", f"missing or invalid {REPORT_HEADER} header", 200)
    return report


def _service_error(status: int, body: bytes) -> ServiceError:
    try:
        error = json.loads(body)["error"]
        return ServiceError(str(error["kind"]), str(error["message"]), status)
    except (ValueError, KeyError, TypeError):
        text = body[:200].decode("utf-8", "replace").strip()
        return ServiceError(f"http_{status}", text or "no error body", status)
