"""Shared fixtures of the SDK tests: tiny real images and a fake protection service call."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from grasp_sdk import ProtectOptions, ProtectResult, parse_policy
from grasp_sdk.sniff import image_type
from PIL import Image


def _make_image(fmt: str, size: tuple[int, int] = (16, 12), noise: bool = False) -> bytes:
    buf = io.BytesIO()
    picture = (Image.effect_noise(size, 60).convert("RGB") if noise
               else Image.new("RGB", size, (200, 30, 90)))
    picture.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def make_image() -> Callable[..., bytes]:
    """``make_image(fmt, size=(16, 12), noise=False)``: a small real image in ``fmt``."""
    return _make_image


@pytest.fixture(scope="session")
def jpeg() -> bytes:
    return _make_image("JPEG")


@pytest.fixture(scope="session")
def png() -> bytes:
    return _make_image("PNG")


def flip(data: bytes) -> bytes:
    """Same length and magic; the last bytes before the end inverted (a stand-in edit)."""
    return data[:-6] + bytes(b ^ 0xFF for b in data[-6:-2]) + data[-2:]


@dataclass
class FakeProtect:
    """Stands in for ``GraspClient.protect``: records calls, transforms the bytes.

    ``mode``: ``append`` (grows the image: bytes after the end), ``flip`` (same length),
    ``same`` (no face: byte-identical), ``fail`` (raises).
    """

    mode: str = "append"
    calls: list[tuple[bytes, ProtectOptions]] = field(default_factory=list)

    async def __call__(self, data: bytes, options: ProtectOptions) -> ProtectResult:
        return self.sync(data, options)

    def sync(self, data: bytes, options: ProtectOptions) -> ProtectResult:
        """The blocking form, for ``rewrite_upload_sync``."""
        self.calls.append((data, options))
        if self.mode == "fail":
            raise ConnectionError("service down")
        new = self.transform(data)
        return ProtectResult(new, image_type(data) or "", {"faces": int(new != data),
                                                           "protected": new != data})

    def transform(self, data: bytes) -> bytes:
        """What this fake returns for ``data``."""
        return {"append": data + b"GRASP", "flip": flip(data), "same": data,
                "fail": data}[self.mode]


@pytest.fixture
def fake_protect() -> FakeProtect:
    return FakeProtect()


TEST_POLICY = """
version: 1
defaults:
  on_failure: pass
sites:
  - name: raw-site
    hosts: [raw.test]
    paths: [/rupload/*]
    formats: [raw]
    length_headers: [X-Entity-Length]
  - name: exact-site
    hosts: [exact.test]
    formats: [raw, multipart]
    size_mode: exact
  - name: signed-site
    hosts: [signed.test]
    signed: true
  - name: blocking-site
    hosts: [block.test]
    on_failure: block
  - name: media-only
    hosts: [fields.test]
    fields: [media, media_data, avatar]
  - name: any
    hosts: ["*"]
"""


@pytest.fixture(scope="session")
def policy():
    return parse_policy(TEST_POLICY, source="test-policy.yaml")
