"""Estimate the libwebp ``quality`` a lossy WebP (VP8) was encoded with, from its header.

The VP8 frame header (RFC 6386, section 9) holds the quantiser index of each segment;
libwebp derives them from ``quality`` (``VP8SetSegmentParams``):
``q = 127·(1 − c^e)`` with ``c = cbrt(linear(quality))``, ``e`` ≈ 1 for an average segment.
Inverting that at the mean segment index gives the quality back to within a few points.
"""

from __future__ import annotations

import math


class _BoolDecoder:
    """The VP8 boolean entropy decoder (RFC 6386, section 7.3)."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 2:
            raise ValueError("VP8 first partition too short")
        self._data = data
        self._pos = 2
        self._value = (data[0] << 8) | data[1]
        self._range = 255
        self._bits = 0

    def bool(self, probability: int) -> int:
        split = 1 + (((self._range - 1) * probability) >> 8)
        big_split = split << 8
        if self._value >= big_split:
            bit = 1
            self._range -= split
            self._value -= big_split
        else:
            bit = 0
            self._range = split
        while self._range < 128:
            self._value <<= 1
            self._range <<= 1
            self._bits += 1
            if self._bits == 8:
                self._bits = 0
                if self._pos < len(self._data):
                    self._value |= self._data[self._pos]
                    self._pos += 1
        return bit

    def literal(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bool(128)
        return value

    def signed(self, n: int) -> int:
        magnitude = self.literal(n)
        return -magnitude if self.bool(128) else magnitude


def _quantiser_indices(vp8: bytes) -> list[int]:
    """The luma AC quantiser index of each segment of a VP8 key frame."""
    if len(vp8) < 10 or vp8[3:6] != b"\x9d\x01\x2a" or vp8[0] & 1:
        raise ValueError("not a VP8 key frame")
    d = _BoolDecoder(vp8[10:])
    d.literal(2)  # colour space, clamping type
    segment_q: list[int] | None = None
    absolute = False
    if d.bool(128):  # segmentation enabled
        update_map = d.bool(128)
        if d.bool(128):  # update segment feature data
            absolute = bool(d.bool(128))
            segment_q = [d.signed(7) if d.bool(128) else 0 for _ in range(4)]
            for _ in range(4):  # loop filter levels
                if d.bool(128):
                    d.signed(6)
        if update_map:
            for _ in range(3):
                if d.bool(128):
                    d.literal(8)
    d.literal(1 + 6 + 3)  # filter type, level, sharpness
    if d.bool(128) and d.bool(128):  # loop filter deltas enabled and updated
        for _ in range(8):
            if d.bool(128):
                d.signed(6)
    d.literal(2)  # log2 of the number of DCT partitions
    base = d.literal(7)
    if segment_q is None:
        return [base]
    return [q if absolute else base + q for q in segment_q]


def _quality_from_indices(indices: list[int]) -> float:
    """Invert libwebp's quality → quantiser-index mapping (``QualityToCompression``).

    Segment ``i`` has ``c_i = c^(1 − a·alpha_i)`` with the alphas centred on 0, so the
    geometric mean of the ``c_i`` recovers ``c``.
    """
    cs = [max(1e-6, 1.0 - q / 127.0) for q in indices]
    c = math.prod(cs) ** (1.0 / len(cs))
    linear = c**3
    quality = linear * 1.5 if linear < 0.5 else (linear + 1.0) / 2.0
    return 100.0 * quality


def estimate_quality(vp8: bytes) -> int | None:
    """The libwebp quality (0–100) of a VP8 chunk's payload; None when the header is unreadable."""
    try:
        indices = [min(127, max(0, q)) for q in _quantiser_indices(vp8)]
    except ValueError:
        return None
    return max(0, min(100, round(_quality_from_indices(indices))))
