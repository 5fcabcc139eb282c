"""The SDK stays light: importing it loads no engine dependency."""

from __future__ import annotations

import subprocess
import sys


def test_sdk_imports_no_torch_pillow_or_numpy() -> None:
    code = ("import sys, grasp_sdk, grasp_sdk.middleware; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'PIL', 'numpy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
