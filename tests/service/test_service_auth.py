"""The bearer token: required on every route but /healthz, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any

import pytest
from _service_helpers import ServiceFactory

from grasp_guard.service import auth

TOKEN = "a-long-random-service-token"


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x",
    f"Bearer {TOKEN[:-1]}",
])
async def test_missing_or_wrong_token_is_401(service: ServiceFactory, noface_png: bytes,
                                             header: str | None) -> None:
    client = await service(token=TOKEN)
    headers = {} if header is None else {"Authorization": header}
    for method, path in [("POST", "/v1/protect"), ("GET", "/readyz"), ("GET", "/metrics")]:
        resp = await client.request(method, path, data=noface_png, headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await resp.json())["error"]["kind"] == "unauthorized"


async def test_right_token_passes_and_healthz_is_open(service: ServiceFactory,
                                                      noface_png: bytes) -> None:
    client = await service(token=TOKEN)
    assert (await client.get("/healthz")).status == 200
    headers = {"Authorization": f"Bearer {TOKEN}"}
    resp = await client.post("/v1/protect", data=noface_png, headers=headers)
    assert resp.status == 200 and await resp.read() == noface_png
    assert (await client.get("/metrics", headers=headers)).status == 200


async def test_token_is_compared_with_compare_digest(service: ServiceFactory,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []
    compare = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    client = await service(token=TOKEN)
    calls.clear()
    assert (await client.get("/metrics", headers={"Authorization": "Bearer x"})).status == 401
    assert (await client.get("/metrics")).status == 401
    assert len(calls) == 2
    # Fixed-length digests: the comparison's time tells nothing about the token's length.
    assert all(len(a) == len(b) == 32 for a, b in calls)


async def test_no_token_on_loopback_means_no_check(service: ServiceFactory) -> None:
    client = await service()
    assert (await client.get("/metrics")).status == 200
