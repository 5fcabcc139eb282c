"""The SDK stays light: importing it loads no engine dependency, nor an optional client."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

ENGINE = ("torch", "PIL", "numpy", "cv2")


def loaded_after(code: str, watched: tuple[str, ...]) -> list[str]:
    """The top-level packages of ``watched`` that a fresh interpreter holds after ``code``."""
    probe = (f"import json, sys; {code}; print(json.dumps(sorted("
             "{m.split('.')[0] for m, module in sys.modules.items() if module is not None}"
             f" & {set(watched)!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    return json.loads(out.stdout)


@pytest.mark.parametrize("modules", [
    "grasp_sdk, grasp_sdk.middleware",
    "grasp_sdk.httpx_transport",
    "grasp_sdk.requests_adapter",
])
def test_sdk_imports_no_engine_dependency(modules: str) -> None:
    assert loaded_after(f"import {modules}", ENGINE) == []


def test_sdk_imports_without_the_optional_clients() -> None:
    """``pip install grasp-guard`` has neither httpx nor requests: hide them and import."""
    hide = "sys.modules.update(httpx=None, requests=None)"
    assert loaded_after(f"{hide}; import grasp_sdk, grasp_sdk.middleware",
                        ("httpx", "requests")) == []
