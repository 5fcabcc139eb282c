"""Reports as strict JSON: a non-finite float (the PSNR of an unchanged image) is null, so
every parser reads them (``JSON.parse``, jq), not only Python's."""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every non-finite float in it replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON of a report (keyword arguments as for :func:`json.dumps`)."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)
