"""The extension's own JavaScript tests (``node --test``) of its pure logic — which sites a
page works for, which messages the background accepts — run on a fresh build, so that
``make test`` runs them (they need no browser)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from grasp_sdk import load_policy

from grasp_guard.extension.build import SOURCE, build_extension

NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_extension_js_tests_pass(tmp_path: Path) -> None:
    built = build_extension(tmp_path / "extension", load_policy())
    shutil.copytree(SOURCE / "test", built.folder / "test")
    # The built folder is no npm package: tell node its .js files are ES modules.
    (built.folder / "package.json").write_text('{"type": "module"}\n', encoding="utf-8")
    assert NODE is not None
    run = subprocess.run([NODE, "--test", "test/"], cwd=built.folder, capture_output=True,
                         text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout and "# pass 0\n" not in run.stdout
