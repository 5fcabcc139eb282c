"""POST /v1/protect and the probes, through the real app and the real (one-step) engine."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from _service_helpers import ServiceFactory, SpyEngine, encode, wait_ready
from aiohttp import FormData
from grasp_sdk.options import ProtectOptions
from PIL import Image

from grasp_guard.pipeline import prepare


def _report(resp: Any) -> dict[str, Any]:
    report = json.loads(resp.headers["X-Grasp-Report"])
    assert isinstance(report, dict)
    return report


def _error(body: dict[str, Any]) -> tuple[str, str]:
    assert set(body) == {"error"} and set(body["error"]) == {"kind", "message"}
    return body["error"]["kind"], body["error"]["message"]


async def test_protects_a_face_jpeg(service: ServiceFactory, face_jpeg: bytes,
                                    face_rgb: np.ndarray) -> None:
    client = await service()
    resp = await client.post("/v1/protect", data=face_jpeg, params={"preset": "fast"},
                             headers={"Content-Type": "image/jpeg"})
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "image/jpeg"
    body = await resp.read()
    out = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
    original = np.asarray(Image.open(io.BytesIO(face_jpeg)).convert("RGB"))
    assert out.shape == original.shape
    report = _report(resp)
    assert report["protected"] is True and report["faces"] == 1
    assert report["format"] == "JPEG"
    assert 25 < report["psnr"] < 100 and 0.5 < report["ssim"] <= 1
    assert set(report["dsr"]) == {"reference"}
    assert set(report["dsr"]["reference"]) == {"cmua", "ruiz"}
    assert {"queue", "total", "optimise", "decode"} <= set(report["seconds"])
    # The perturbation lands in the face crop; far from it the pixels only see re-encoding.
    x, y, w, h = report["regions"][0]["box"]
    face = (slice(y, y + h), slice(x, x + w))
    diff = np.abs(out.astype(int) - original.astype(int))
    assert diff[face].mean() > 0.5
    crop = report["regions"][0]["crop"]
    assert crop == prepare(face_jpeg, ProtectOptions()).tasks[0].crop.shape[0]


async def test_no_face_comes_back_byte_identical(service: ServiceFactory, noface_png: bytes,
                                                 spy: SpyEngine) -> None:
    client = await service()
    resp = await client.post("/v1/protect", data=noface_png)
    assert resp.status == 200
    assert await resp.read() == noface_png
    assert resp.headers["Content-Type"] == "image/png"
    report = _report(resp)
    assert report["protected"] is False and report["faces"] == 0 and report["reason"]
    assert spy.batches == []


async def test_multipart_image_field_with_form_options(service: ServiceFactory,
                                                       face_jpeg: bytes) -> None:
    client = await service()
    form = FormData()
    form.add_field("preset", "fast")
    form.add_field("site_jpeg_quality", "85")
    form.add_field("image", face_jpeg, filename="me.jpg", content_type="image/jpeg")
    resp = await client.post("/v1/protect", data=form)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "image/jpeg"
    Image.open(io.BytesIO(await resp.read())).verify()
    assert _report(resp)["protected"] is True


@pytest.mark.parametrize("params", [
    {"preset": "extreme"},
    {"size_mode": "small"},
    {"site_jpeg_quality": "high"},
    {"site_max_side": "4"},
    {"colour": "blue"},
])
async def test_bad_options_are_400(service: ServiceFactory, face_jpeg: bytes,
                                   params: dict[str, str]) -> None:
    client = await service()
    resp = await client.post("/v1/protect", data=face_jpeg, params=params)
    assert resp.status == 400
    kind, message = _error(await resp.json())
    assert kind == "invalid_options" and message


async def test_option_in_query_and_form_is_400(service: ServiceFactory, face_jpeg: bytes) -> None:
    client = await service()
    form = FormData()
    form.add_field("preset", "fast")
    form.add_field("image", face_jpeg, filename="me.jpg", content_type="image/jpeg")
    resp = await client.post("/v1/protect", data=form, params={"preset": "strong"})
    assert resp.status == 400
    assert _error(await resp.json())[0] == "invalid_options"


@pytest.mark.parametrize("body", [b"", b"\xff\xd8\xff\xe0 truncated jpeg", b"hello, not an image"])
async def test_corrupt_or_empty_is_400(service: ServiceFactory, body: bytes) -> None:
    client = await service()
    resp = await client.post("/v1/protect", data=body)
    assert resp.status == 400
    assert _error(await resp.json())[0] == "invalid_image"


async def test_multipart_without_image_is_400(service: ServiceFactory) -> None:
    client = await service()
    form = FormData()
    form.add_field("preset", "fast")
    form.add_field("photo", b"\x00" * 10, filename="x.bin")
    resp = await client.post("/v1/protect", data=form)
    assert resp.status == 400
    assert _error(await resp.json())[0] == "invalid_image"


async def test_unsupported_format_is_415(service: ServiceFactory, face_rgb: np.ndarray) -> None:
    client = await service()
    resp = await client.post("/v1/protect", data=encode(face_rgb, "GIF"))
    assert resp.status == 415
    assert _error(await resp.json())[0] == "unsupported_format"


async def test_a_bug_of_ours_is_500_not_the_clients_fault(service: ServiceFactory, face_jpeg: bytes,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from grasp_guard.service.cpu import CpuStage

    def broken(*_: Any) -> Any:
        raise ValueError("an internal shape mismatch")

    monkeypatch.setattr(CpuStage, "_prepare", staticmethod(broken))
    client = await service()
    resp = await client.post("/v1/protect", data=face_jpeg)
    assert resp.status == 500
    kind, message = _error(await resp.json())
    assert kind == "internal" and "shape mismatch" not in message


async def test_body_over_max_bytes_is_413(service: ServiceFactory, face_jpeg: bytes) -> None:
    client = await service(max_bytes=len(face_jpeg) - 1)
    resp = await client.post("/v1/protect", data=face_jpeg)
    assert resp.status == 413
    kind, message = _error(await resp.json())
    assert kind == "too_large" and str(len(face_jpeg) - 1) in message
    form = FormData()
    form.add_field("image", face_jpeg, filename="me.jpg", content_type="image/jpeg")
    resp = await client.post("/v1/protect", data=form)
    assert resp.status == 413
    assert _error(await resp.json())[0] == "too_large"


async def test_image_over_max_pixels_is_413(service: ServiceFactory, face_jpeg: bytes) -> None:
    client = await service(max_pixels=100 * 100)
    resp = await client.post("/v1/protect", data=face_jpeg)
    assert resp.status == 413
    assert _error(await resp.json())[0] == "too_large"


async def test_unknown_route_and_method_are_json(service: ServiceFactory) -> None:
    client = await service()
    resp = await client.get("/v1/nothing")
    assert resp.status == 404 and _error(await resp.json())[0] == "not_found"
    resp = await client.get("/v1/protect")
    assert resp.status == 405 and _error(await resp.json())[0] == "method_not_allowed"
    assert "POST" in resp.headers["Allow"]


async def test_readyz_turns_ready_after_warm_up(service: ServiceFactory, spy: SpyEngine,
                                                face_jpeg: bytes) -> None:
    spy.warm_gate.clear()
    client = await service(ready=False)
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 503 and "Retry-After" in resp.headers
    assert "loading" in (await resp.json())["reason"]
    resp = await client.post("/v1/protect", data=face_jpeg)
    assert resp.status == 503 and "Retry-After" in resp.headers
    assert _error(await resp.json())[0] == "unavailable"
    spy.warm_gate.set()
    await wait_ready(client)
    assert spy.warmed
    body = await (await client.get("/readyz")).json()
    assert body["status"] == "ready" and body["queue"] == 0


async def test_readyz_reports_a_failed_load(aiohttp_client: Any) -> None:
    from grasp_guard.service import Settings, create_app

    def broken(_: Settings) -> Any:
        raise RuntimeError("no weights here")

    client = await aiohttp_client(create_app(Settings(), engine_factory=broken))
    for _ in range(200):
        body = await (await client.get("/readyz")).json()
        if "no weights here" in body["reason"]:
            break
    else:
        pytest.fail("the load error never showed")
    assert (await client.get("/readyz")).status == 503


def _samples(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


async def test_metrics_count_images_faces_errors_and_batches(
        service: ServiceFactory, face_jpeg: bytes, noface_png: bytes) -> None:
    client = await service()
    assert (await client.post("/v1/protect", data=face_jpeg, params={"preset": "fast"})).status == 200
    assert (await client.post("/v1/protect", data=noface_png)).status == 200
    assert (await client.post("/v1/protect", data=b"junk")).status == 400
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    m = _samples(await resp.text())
    assert m['grasp_images_total{outcome="protected"}'] == 1
    assert m['grasp_images_total{outcome="unchanged"}'] == 1
    assert m["grasp_faces_total"] == 1
    assert m['grasp_errors_total{kind="invalid_image"}'] == 1
    assert m["grasp_batch_size_count"] == 1 and m["grasp_batch_size_sum"] == 1
    assert m["grasp_queue_wait_seconds_count"] == 1
    assert m["grasp_optimise_seconds_count"] == 1
    assert m["grasp_request_seconds_count"] == 3
    assert m["grasp_queue_depth"] == 0 and m["grasp_crops_pending"] == 0


async def test_each_app_has_its_own_registry(service: ServiceFactory, noface_png: bytes) -> None:
    first, second = await service(), await service()
    assert (await first.post("/v1/protect", data=noface_png)).status == 200
    m = _samples(await (await second.get("/metrics")).text())
    assert m.get('grasp_images_total{outcome="unchanged"}', 0) == 0


async def test_an_answer_is_not_kept_while_its_connection_waits(service: ServiceFactory,
                                                               face_jpeg: bytes) -> None:
    # aiohttp keeps a connection's last answer until its next request (keep-alive): a
    # returned Response kept its whole image, one per idle client
    import gc

    from aiohttp import web

    client = await service()
    resp = await client.post("/v1/protect", data=face_jpeg, params={"preset": "fast"})
    image = await resp.read()
    assert resp.status == 200 and resp.headers.get("Connection", "keep-alive") == "keep-alive"
    gc.collect()
    kept = [o for o in gc.get_objects()
            if type(o) is web.Response and isinstance(o.body, bytes) and o.body == image]
    assert not kept
