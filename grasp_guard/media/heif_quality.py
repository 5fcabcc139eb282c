"""Match the quality of a HEIC: re-encode its decoded pixels until they cost what the source spent.

HEVC records no quality setting, and the quantiser of another encoder (a phone's) does not
map onto x265's rate factor. What compares across encoders is the rate: x265 through libheif
(quality q → CRF (100 − q) / 2) re-encoding a sample of the decoded pixels spends f(q) bytes,
and the estimate is the q whose f(q) is closest to what the source spent on the same pixels.
log f is close to linear in q (the rate halves about every 6 CRF steps, 12 quality points), so
a secant search on log f settles in two to four encodes.

Decoded pixels have lost the source's coding noise and cost fewer bits than the scene did the
first time, so the match errs towards a higher quality: the protected output loses less, and
may come out a little larger than the source.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

logger = logging.getLogger(__name__)

MIN_QUALITY, MAX_QUALITY = 10, 100
FIRST_GUESS = 80
POINTS_PER_HALVING = 12.0
MAX_TRIALS = 4
_MIN_SLOPE = 1e-3  # log2 bytes per quality point: flatter than this, keep the prior slope


def match_quality(
    measure: Callable[[int], int],
    target: int,
    *,
    first: int = FIRST_GUESS,
    trials: int = MAX_TRIALS,
) -> int:
    """The quality whose encoding of the sample costs closest to ``target`` bytes.

    Args:
        measure: bytes of coded image data for the sample encoded at a quality (0–100).
        target: bytes the source spent on the same sample.
        first: the first quality tried.
        trials: the most encodes spent.

    Returns:
        An integer quality in ``MIN_QUALITY``..``MAX_QUALITY``; ties go to the higher one.
    """
    if target <= 0:
        raise ValueError(f"target must be a positive byte count, got {target}")
    tried: dict[int, float] = {}
    slope = 1.0 / POINTS_PER_HALVING
    quality = first
    while quality not in tried and len(tried) < trials:
        tried[quality] = math.log2(max(1, measure(quality)))
        if len(tried) >= 2:
            (q_a, r_a), (q_b, r_b) = sorted(tried.items(), key=lambda kv: abs(kv[0] - quality))[:2]
            if q_a != q_b and (r_b - r_a) / (q_b - q_a) > _MIN_SLOPE:
                slope = (r_b - r_a) / (q_b - q_a)
        step = (math.log2(target) - tried[quality]) / slope
        quality = max(MIN_QUALITY, min(MAX_QUALITY, round(quality + step)))
    best = min(tried, key=lambda q: (abs(tried[q] - math.log2(target)), -q))
    logger.debug("quality matched to %d bytes: %d (tried %s)", target, best, sorted(tried))
    return best
