"""Browser origins: the extension's gets CORS, any other is refused, no Origin is as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _service_helpers import ServiceFactory

from grasp_guard.errors import ConfigError
from grasp_guard.service.settings import Settings, is_origin, load_settings

EXTENSION = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"
TOKEN = "a-long-random-service-token"


@pytest.mark.parametrize("value,ok", [
    (EXTENSION, True), ("moz-extension://0b6c4b7e-7a5b-4d59-9c0e-2f9d3c2a7a11", True),
    ("https://app.example.com", True), ("http://127.0.0.1:8080", True), ("http://[::1]:9", True),
    ("*", False), ("https://*.example.com", False), ("https://example.com/", False),
    ("https://Example.com", False), ("example.com", False), ("null", False), ("", False), (7, False),
])
def test_is_origin(value: object, ok: bool) -> None:
    assert is_origin(value) is ok


def test_cors_origins_default_to_none_and_load_from_yaml(tmp_path: Path) -> None:
    assert Settings().cors_origins == ()
    path = tmp_path / "service.yaml"
    path.write_text(f"cors_origins: [{EXTENSION}]\n", encoding="utf-8")
    assert load_settings(path, env={}).cors_origins == (EXTENSION,)
    with pytest.raises(ConfigError, match="cors_origins"):
        Settings(cors_origins=("https://*.example.com",))


@pytest.mark.parametrize("origin", ["https://evil.example", "null", EXTENSION.replace("a", "b")])
@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/protect"), ("GET", "/readyz"), ("GET", "/healthz"), ("OPTIONS", "/v1/protect"),
])
async def test_a_foreign_origin_is_refused_before_any_work(
        service: ServiceFactory, noface_png: bytes, origin: str, method: str, path: str) -> None:
    client = await service(cors_origins=(EXTENSION,))
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    resp = await client.request(method, path, data=noface_png, headers=headers)
    assert resp.status == 403
    assert (await resp.json())["error"]["kind"] == "forbidden_origin"
    assert "Access-Control-Allow-Origin" not in resp.headers
    metrics = await (await client.get("/metrics")).text()
    assert 'grasp_images_total{outcome="unchanged"}' not in metrics


async def test_no_origin_list_refuses_every_browser(service: ServiceFactory,
                                                    noface_png: bytes) -> None:
    client = await service()
    resp = await client.post("/v1/protect", data=noface_png, headers={"Origin": EXTENSION})
    assert resp.status == 403


async def test_no_origin_header_is_as_before(service: ServiceFactory, noface_png: bytes) -> None:
    client = await service(cors_origins=(EXTENSION,))
    resp = await client.post("/v1/protect", data=noface_png)
    assert resp.status == 200 and await resp.read() == noface_png
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_the_preflight_of_an_allowed_origin_is_answered_before_the_token(
        service: ServiceFactory) -> None:
    client = await service(cors_origins=(EXTENSION,), token=TOKEN)
    resp = await client.options("/v1/protect", headers={
        "Origin": EXTENSION, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
        "Access-Control-Request-Private-Network": "true"})
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == EXTENSION
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    allowed = resp.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert resp.headers["Access-Control-Allow-Private-Network"] == "true"
    assert "Origin" in resp.headers["Vary"]


async def test_an_allowed_origin_gets_the_image_report_and_errors_readable(
        service: ServiceFactory, noface_png: bytes) -> None:
    client = await service(cors_origins=(EXTENSION,), token=TOKEN)
    headers = {"Origin": EXTENSION, "Content-Type": "image/png"}
    refused = await client.post("/v1/protect", data=noface_png, headers=headers)
    assert refused.status == 401
    assert refused.headers["Access-Control-Allow-Origin"] == EXTENSION
    resp = await client.post("/v1/protect", data=noface_png,
                             headers={**headers, "Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200 and await resp.read() == noface_png
    assert resp.headers["Access-Control-Allow-Origin"] == EXTENSION
    exposed = resp.headers["Access-Control-Expose-Headers"]
    assert "X-Grasp-Report" in exposed and "Retry-After" in exposed
    assert json.loads(resp.headers["X-Grasp-Report"])["faces"] == 0
