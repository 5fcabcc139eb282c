"""Fixtures of the proxy addon tests: a policy file and a real tiny JPEG."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest
from _proxy_helpers import POLICY
from PIL import Image

with warnings.catch_warnings():
    # mitmproxy's proxyauth addon imports ldap3, which uses names pyasn1 0.6 deprecates; the
    # warning is attributed to ldap3, which pyproject's mitmproxy.* filter does not cover.
    warnings.simplefilter("ignore", DeprecationWarning)
    import mitmproxy.addons  # noqa: F401

@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 30, 90)).save(buf, "JPEG")
    return buf.getvalue()
