"""The JavaScript SDK's own tests (``node --test sdk/js/test/``), so that ``make test`` runs them.

The policy they read is the shipped one, compiled here by the same function as
``grasp-guard policy compile``: the JS policy cases then check the compiled JSON against
the shared table (tests/policy_cases.json) that test_policy_cases.py runs in Python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from grasp_sdk import load_policy
from grasp_sdk.policy_json import dumps

JS_SDK = Path(__file__).resolve().parents[2] / "sdk" / "js"
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_js_sdk_tests_pass(tmp_path: Path) -> None:
    compiled = tmp_path / "policy.json"
    compiled.write_text(dumps(load_policy()), encoding="utf-8")
    env = {**os.environ, "GRASP_GUARD_POLICY_JSON": str(compiled)}
    run = subprocess.run([NODE, "--test", "test/"], cwd=JS_SDK, env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout and "# pass 0\n" not in run.stdout
