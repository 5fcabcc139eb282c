"""Helpers of the proxy addon tests: a small policy and a stand-in protection service."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from grasp_sdk import ProtectOptions, ProtectResult, ServiceUnavailable

POLICY = """\
version: 1
defaults:
  preset: fast
sites:
  - name: pics
    hosts: [upload.example.com]
    paths: [/upload]
    methods: [POST, PUT]
    formats: [raw, multipart]
    fields: [file]
    max_bytes: 100000
    length_headers: [X-Entity-Length]
  - name: strict
    hosts: [strict.example.com]
    formats: [raw]
    on_failure: block
  - name: signed
    hosts: [signed.example.com]
    formats: [raw]
    signed: true
  - name: signed-strict
    hosts: [signed-strict.example.com]
    formats: [raw]
    signed: true
    on_failure: block
"""


def flip(data: bytes) -> bytes:
    """The same length and magic; four bytes before the end inverted (a stand-in edit)."""
    return data[:-6] + bytes(b ^ 0xFF for b in data[-6:-2]) + data[-2:]


def grow(data: bytes) -> bytes:
    """A longer, still complete JPEG: a comment segment after the SOI marker."""
    return data[:2] + b"\xff\xfe\x00\x07guard" + data[2:]


def scramble(data: bytes) -> bytes:
    """The same length and magic; every other byte changed (a stand-in edit everywhere)."""
    return data[:3] + bytes(b ^ 0x5A for b in data[3:])


TRANSFORMS: dict[str, Callable[[bytes], bytes]] = {
    "flip": flip, "grow": grow, "scramble": scramble, "same": bytes,
    "not_image": lambda data: b"<html>oops</html>"}


@dataclass
class FakeProtect:
    """Stands in for ``GraspClient.protect``.

    ``mode``: ``flip`` (same length, changed), ``scramble`` (same length, every byte after
    the magic changed), ``grow`` (longer), ``same`` (no face),
    ``down`` (ServiceUnavailable), ``crash`` (an unexpected exception), ``slow`` (never
    answers in time), ``not_image`` (returns something that is not the image's format).
    """

    mode: str = "flip"
    calls: list[tuple[bytes, ProtectOptions]] = field(default_factory=list)

    async def __call__(self, data: bytes, options: ProtectOptions) -> ProtectResult:
        self.calls.append((data, options))
        if self.mode == "down":
            raise ServiceUnavailable("all endpoints refused: connection refused")
        if self.mode == "crash":
            raise KeyError("boom")
        if self.mode == "slow":
            await asyncio.sleep(30)
        new = TRANSFORMS.get(self.mode, bytes)(data)
        return ProtectResult(new, "image/jpeg", {"faces": 1, "protected": new != data})
