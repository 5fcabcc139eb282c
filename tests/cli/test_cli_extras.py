"""The CLI on an install without the extras a command needs: every command is listed, the
SDK's own work goes on, and the others say what to install (they raised a traceback at
start-up, even for --help)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# What the base install (the SDK's: aiohttp, PyYAML) lacks.
_ABSENT = ("torch", "numpy", "PIL", "cv2", "mitmproxy", "skimage", "cryptography", "onnx")


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    code = ("import sys\n"
            f"for name in {_ABSENT!r}: sys.modules[name] = None\n"
            "from grasp_guard.cli import main\n"
            f"sys.exit(main({list(argv)!r}))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)


def test_help_lists_every_command_and_what_each_missing_one_needs() -> None:
    out = _cli("--help")
    assert out.returncode == 0, out.stderr
    assert "protect      (not installed: pip install 'grasp-guard[engine]')" in out.stdout
    assert "Work with the per-site upload policy." in out.stdout


@pytest.mark.parametrize("argv", [("protect", "me.jpg", "-o", "out.jpg"), ("protect", "--help"),
                                  ("protect", "-o", "out.jpg", "me.jpg"), ("serve", "--port", "1")])
def test_a_command_that_needs_the_engine_says_what_to_install(argv: tuple[str, ...]) -> None:
    out = _cli(*argv)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"`{argv[0]}` needs what this install lacks" in out.stderr
    assert "pip install 'grasp-guard[engine]'" in out.stderr


def test_the_sdks_own_commands_run() -> None:
    out = _cli("policy", "compile")
    assert out.returncode == 0, out.stderr
    assert '"sites"' in out.stdout
