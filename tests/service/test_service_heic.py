"""HEIC uploads through the real app: same Content-Type back, typed errors for broken files."""

from __future__ import annotations

import io
import json

import numpy as np
import pillow_heif
import pytest
from _service_helpers import ServiceFactory, SpyEngine
from PIL import Image
from skimage import data


def _heic(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    pillow_heif.from_bytes("RGB", (rgb.shape[1], rgb.shape[0]), rgb.tobytes()).save(out, quality=80)
    return out.getvalue()


@pytest.fixture(scope="module")
def face_heic(face_rgb: np.ndarray) -> bytes:
    return _heic(np.ascontiguousarray(face_rgb))


async def test_protects_a_face_heic(service: ServiceFactory, face_heic: bytes) -> None:
    client = await service()
    resp = await client.post("/v1/protect", data=face_heic, params={"preset": "fast"},
                             headers={"Content-Type": "image/heic"})
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "image/heic"
    report = json.loads(resp.headers["X-Grasp-Report"])
    assert report["protected"] is True and report["format"] == "HEIF" and report["faces"] == 1
    body = await resp.read()
    assert body[4:12] == b"ftypheic" and body != face_heic
    assert pillow_heif.open_heif(body).size == pillow_heif.open_heif(face_heic).size


async def test_no_face_heic_comes_back_byte_identical(service: ServiceFactory,
                                                      spy: SpyEngine) -> None:
    noface = _heic(np.asarray(Image.fromarray(data.coffee()).resize((160, 120))))
    client = await service()
    resp = await client.post("/v1/protect", data=noface)
    assert resp.status == 200 and await resp.read() == noface
    assert resp.headers["Content-Type"] == "image/heic" and spy.batches == []


async def test_truncated_heic_is_400(service: ServiceFactory, face_heic: bytes) -> None:
    client = await service()
    resp = await client.post("/v1/protect", data=face_heic[: len(face_heic) // 2])
    assert resp.status == 400
    assert (await resp.json())["error"]["kind"] == "invalid_image"
