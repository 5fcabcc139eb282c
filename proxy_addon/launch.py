"""Start and supervise the proxy's processes: ``mitmdump`` with the addon, and the service.

Used by ``grasp-guard proxy``, the end-to-end tests and the overhead benchmark, so that
all three run mitmdump with the same flags.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ENTRY = Path(__file__).with_name("mitm_entry.py")
CA_CERT = "mitmproxy-ca-cert.pem"
DEFAULT_CONFDIR = Path("~/.mitmproxy")
STOP_GRACE_S = 15.0


class LaunchError(RuntimeError):
    """A child process did not start, or did not become ready in time."""


@dataclass(frozen=True)
class AddonOptions:
    """The GRASP Guard addon's options, as ``mitmdump`` will be given them.

    Attributes:
        policy: the policy file.
        services: the protection service base URLs, tried in order.
        timeout_s: seconds to protect one upload.
        max_buffer: the largest body (bytes) held back for protection.
    """

    policy: Path
    services: tuple[str, ...]
    timeout_s: float
    max_buffer: int

    def sets(self) -> list[str]:
        """``--set`` arguments; the token travels in the environment, never on argv."""
        values = [f"grasp_policy={self.policy}", f"grasp_timeout={self.timeout_s:g}",
                  f"grasp_max_buffer={self.max_buffer}"]
        values += [f"grasp_service={url}" for url in self.services]
        return values


def mitmdump_argv() -> list[str]:
    """How to run this interpreter's mitmdump (the venv's script, else its module)."""
    script = Path(sys.executable).with_name("mitmdump")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()"]


def mitmdump_command(*, host: str, port: int, confdir: Path, allow_hosts: Sequence[str],
                     stream_large_bodies: int, addon: AddonOptions | None,
                     extra_sets: Sequence[str] = ()) -> list[str]:
    """The full ``mitmdump`` command line, with or without the addon (for a baseline).

    Args:
        host: the address to listen on.
        port: the port to listen on.
        confdir: mitmproxy's configuration folder (its CA lives there).
        allow_hosts: regexes of the hosts whose TLS is intercepted.
        stream_large_bodies: bodies larger than this stream, whatever their headers say.
        addon: the addon's options; None runs plain mitmdump.
        extra_sets: further ``OPTION=VALUE`` mitmproxy options.
    """
    sets = [f"confdir={confdir}", "flow_detail=0", f"stream_large_bodies={stream_large_bodies}"]
    sets += [f"allow_hosts={regex}" for regex in allow_hosts]
    argv = [*mitmdump_argv(), "--listen-host", host, "--listen-port", str(port)]
    if addon is not None:
        argv += ["-s", str(ENTRY)]
        sets += addon.sets()
    for value in [*sets, *extra_sets]:
        argv += ["--set", value]
    return argv


def service_command(host: str, port: int, *, config: Path | None = None,
                    verbose: bool = False) -> list[str]:
    """``grasp-guard serve`` on ``host:port`` with this interpreter (and a settings file)."""
    return [sys.executable, "-m", "grasp_guard", *(["-v"] if verbose else []), "serve",
            "--host", host, "--port", str(port), *(["--config", str(config)] if config else [])]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def child(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
          **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` in its own session; on exit, SIGTERM it, then SIGKILL past a grace."""
    proc = subprocess.Popen(list(argv), env=None if env is None else dict(env),
                            start_new_session=True, **popen)
    logger.info("started pid %d: %s", proc.pid, " ".join(argv[:6]))
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> int:
    """Stop ``proc``: SIGTERM, then SIGKILL if it is still running after ``grace_s``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            logger.warning("pid %d ignored SIGTERM for %.0f s: killing it", proc.pid, grace_s)
            proc.kill()
    return proc.wait()


def wait_listening(host: str, port: int, proc: subprocess.Popen[bytes],
                   timeout_s: float = 60.0) -> None:
    """Wait until ``host:port`` accepts connections; raises LaunchError if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _check_alive(proc)
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
            return
        time.sleep(0.1)
    raise LaunchError(f"nothing listens on {host}:{port} after {timeout_s:.0f} s")


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 300.0,
               token: str | None = None) -> None:
    """Wait until the service at ``url`` answers ``GET /readyz`` with 200 (asked with the
    bearer ``token`` it asks for, if any)."""
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(url.rstrip("/") + "/readyz", headers=bearer(token))
    while time.monotonic() < deadline:
        _check_alive(proc)
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.25)
    raise LaunchError(f"the service at {url} was not ready after {timeout_s:.0f} s")


def bearer(token: str | None) -> dict[str, str]:
    """The headers that carry ``token`` to the service, if there is one."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def _check_alive(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        args = proc.args if isinstance(proc.args, list) else [proc.args]
        raise LaunchError(f"pid {proc.pid} ({' '.join(map(str, args[:6]))} ...) exited with "
                          f"status {proc.returncode} while starting")


def platform_signals(*names: str) -> tuple[signal.Signals, ...]:
    """The signals of ``names`` this platform has (Windows has no SIGHUP)."""
    return tuple(getattr(signal, name) for name in names if hasattr(signal, name))


def supervise(main: subprocess.Popen[bytes], others: Sequence[subprocess.Popen[bytes]]) -> int:
    """Wait for ``main`` to exit, forwarding SIGINT, SIGTERM and SIGHUP to every child.

    Returns:
        The signal that stopped us (negative), or ``main``'s exit status if it ended alone.
    """
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        for proc in (main, *others):
            if proc.poll() is None:
                proc.send_signal(signum)

    watched = platform_signals("SIGINT", "SIGTERM", "SIGHUP")
    previous = {sig: signal.signal(sig, forward) for sig in watched}
    try:
        status = main.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return -received[0] if received else status
