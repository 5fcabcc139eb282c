"""The CLI, the service, the proxy addon and the SDK import where POSIX-only modules and
signals are missing (Windows): simulated here by taking them away before the import."""

from __future__ import annotations

import subprocess
import sys

WITHOUT_POSIX = """
import signal, sys
del signal.SIGHUP
for name in ("fcntl", "termios", "pwd", "grp", "resource"):
    sys.modules[name] = None  # an import of it raises ImportError
import grasp_guard.cli, grasp_guard.service, proxy_addon.addon, grasp_sdk
"""


def test_everything_imports_without_posix_only_modules_and_signals() -> None:
    run = subprocess.run([sys.executable, "-W", "ignore", "-c", WITHOUT_POSIX], capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
