"""Byte budgets: the most faithful encoding that fits, then padding to an exact length.

``size_mode`` is ``any`` (no budget), ``max`` (never longer than the input) or ``exact``
(the input's length: encode under it, then pad with a format-legal comment or chunk).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..errors import SizeBudgetError

logger = logging.getLogger(__name__)

SizeMode = Literal["any", "max", "exact"]
SIZE_MODES: tuple[SizeMode, ...] = ("any", "max", "exact")


@dataclass(frozen=True)
class Padding:
    """How a format grows a finished file by exactly ``n`` bytes.

    Attributes:
        minimum: the smallest non-zero padding possible for a given output.
        pad: the output grown by exactly ``n`` bytes (``n`` ≥ ``minimum``), still valid.
    """

    minimum: Callable[[bytes], int]
    pad: Callable[[bytes, int], bytes]


def fit(
    render: Callable[[int], bytes],
    levels: int,
    *,
    size_mode: SizeMode,
    target: int,
    padding: Padding,
    lossless: bool,
    what: str,
) -> bytes:
    """Encode within the budget of ``size_mode``.

    Args:
        render: the whole output file at a compression level; 0 is the faithful encoding.
        levels: how many levels exist. Lossy levels trade quality for size, monotonically
            enough to bisect; lossless ones only spend more effort and are tried in order.
        size_mode: ``any``, ``max`` or ``exact``.
        target: the byte budget (the input's length).
        padding: how the format pads (used by ``exact``).
        lossless: whether the levels are lossless variants (scan) or lossy ones (bisect).
        what: the format, for messages.

    Raises:
        SizeBudgetError: no level fits.
    """
    if size_mode not in SIZE_MODES:
        raise ValueError(f"size_mode must be one of {SIZE_MODES}, got {size_mode!r}")
    cache: dict[int, bytes] = {}

    def at(level: int) -> bytes:
        if level not in cache:
            cache[level] = render(level)
        return cache[level]

    if size_mode == "any":
        return at(0)

    def fits(data: bytes) -> bool:
        if size_mode == "max":
            return len(data) <= target
        return len(data) == target or len(data) + padding.minimum(data) <= target

    chosen: int | None = None
    if lossless:
        chosen = next((lv for lv in range(levels) if fits(at(lv))), None)
    elif fits(at(0)):
        chosen = 0
    elif fits(at(levels - 1)):
        low, high = 0, levels - 1  # at(low) does not fit, at(high) does
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (low, mid) if fits(at(mid)) else (mid, high)
        chosen = high
    if chosen is None:
        smallest = min(len(d) for d in cache.values())
        raise SizeBudgetError(
            f"{what} cannot be re-encoded within {target} bytes (size_mode={size_mode}): "
            f"the smallest encoding tried is {smallest} bytes"
        )
    if chosen:
        logger.info(
            "%s: compression level %d/%d chosen to meet %d bytes", what, chosen, levels - 1, target
        )
    data = at(chosen)
    if size_mode == "exact" and len(data) < target:
        data = padding.pad(data, target - len(data))
        if len(data) != target:
            raise AssertionError(f"{what} padding produced {len(data)} bytes, expected {target}")
    return data
