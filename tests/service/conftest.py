"""Fixtures of the service tests: small images, the real reference engine held on a leash."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _service_helpers import FACE_SIDE, ServiceFactory, SpyEngine, encode, wait_ready
from aiohttp.test_utils import TestClient
from PIL import Image
from skimage import data

from grasp_guard.models.editor import Editor
from grasp_guard.models.zoo import load_editor
from grasp_guard.service import Settings, create_app


@pytest.fixture(scope="session")
def face_rgb() -> np.ndarray:
    return np.asarray(Image.fromarray(data.astronaut()).resize((FACE_SIDE, FACE_SIDE),
                                                              Image.Resampling.LANCZOS))


@pytest.fixture(scope="session")
def face_jpeg(face_rgb: np.ndarray) -> bytes:
    return encode(face_rgb, "JPEG", quality=90)


@pytest.fixture(scope="session")
def noface_png() -> bytes:
    rgb = np.asarray(Image.fromarray(data.coffee()).resize((160, 120)))
    return encode(rgb, "PNG")


@pytest.fixture(scope="session")
def editors() -> list[Editor]:
    return [load_editor("reference")]


@pytest.fixture
def spy(editors: list[Editor]) -> SpyEngine:
    return SpyEngine(editors)


@pytest.fixture
def service(aiohttp_client: Any, spy: SpyEngine) -> ServiceFactory:
    """Start the real app on the spy engine with settings ``overrides``; wait until ready.

    The admission prior is the spy's order of magnitude (one GRASP step a batch), not a
    real crop's: tests that are not about admission queue several crops at once.
    """

    async def start(ready: bool = True, **overrides: Any) -> TestClient:
        settings = Settings(**{"gather_ms": 5.0, "admission_prior_s": 0.5, **overrides})
        client: TestClient = await aiohttp_client(create_app(settings,
                                                             engine_factory=lambda _: spy))
        if ready:
            token = overrides.get("token")
            await wait_ready(client, {"Authorization": f"Bearer {token}"} if token else None)
        return client

    return start
