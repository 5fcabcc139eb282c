"""Every test, and every process a test starts, sees an empty weights cache of its own.

A developer's or CI's real cache (``make setup`` fetches the CycleGAN there) must not change
which surrogates the default set loads in a test: the suite runs on the embedded reference
unless a test places weights in a cache itself.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_CACHE = tempfile.mkdtemp(prefix="grasp-guard-test-cache-")
os.environ["GRASP_GUARD_CACHE"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
