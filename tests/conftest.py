"""Every test, and every process a test starts, sees an empty weights cache of its own.

A developer's or CI's real cache (``make setup`` fetches the CycleGAN there) must not change
which surrogates the default set loads in a test: the suite runs on the embedded reference
unless a test places weights in a cache itself, or asks for the caller's cache by its
fixture (the browser group, whose uploads must pass `grasp-guard verify` on real weights).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_CALLER_CACHE = os.environ.get("GRASP_GUARD_CACHE")
_CACHE = tempfile.mkdtemp(prefix="grasp-guard-test-cache-")
os.environ["GRASP_GUARD_CACHE"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def caller_weights_cache() -> Path:
    """The weights cache the suite was started with: ``$GRASP_GUARD_CACHE`` or the default
    place, where `make setup` fetched the real CycleGAN."""
    from grasp_guard.models.weights import CACHE_ENV, default_cache_dir

    with pytest.MonkeyPatch.context() as env:
        if _CALLER_CACHE is None:
            env.delenv(CACHE_ENV, raising=False)
        else:
            env.setenv(CACHE_ENV, _CALLER_CACHE)
        return default_cache_dir()
