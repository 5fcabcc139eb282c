"""Starting and supervising the proxy's processes, and the allow_hosts derivation."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from grasp_sdk import PolicyError

from proxy_addon.hosts import allow_hosts
from proxy_addon.launch import (
    ENTRY,
    AddonOptions,
    LaunchError,
    child,
    mitmdump_command,
    platform_signals,
    stop,
    supervise,
    wait_listening,
    wait_ready,
)

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]
STUBBORN = [sys.executable, "-c",
            ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
             "print('ready', flush=True); time.sleep(60)")]


def sets(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "--set"]


def test_mitmdump_command_with_and_without_the_addon(tmp_path: Path) -> None:
    addon = AddonOptions(tmp_path / "p.yaml", ("http://a:1", "http://b:2"), 7.5, 4096)
    plain, guarded = (
        mitmdump_command(host="127.0.0.1", port=8081, confdir=tmp_path,
                         allow_hosts=[r"^x\.com:\d+$"], stream_large_bodies=4096, addon=options,
                         extra_sets=["ssl_insecure=true"])
        for options in (None, addon))
    assert "-s" not in plain and guarded[guarded.index("-s") + 1] == str(ENTRY)
    assert plain[plain.index("--listen-port") + 1] == "8081"
    base = [f"confdir={tmp_path}", "flow_detail=0", "stream_large_bodies=4096",
            r"allow_hosts=^x\.com:\d+$"]
    assert sets(plain) == [*base, "ssl_insecure=true"]
    assert sets(guarded) == [*base, f"grasp_policy={tmp_path / 'p.yaml'}", "grasp_timeout=7.5",
                             "grasp_max_buffer=4096", "grasp_service=http://a:1",
                             "grasp_service=http://b:2", "ssl_insecure=true"]
    assert not any("token" in arg for arg in guarded)


def test_allow_hosts_from_a_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("sites:\n  - {name: a, hosts: [up.example.com, '*.cdn.net', '*']}\n"
                    "  - {name: b, hosts: [off.example.com], enabled: false}\n")
    assert allow_hosts(path) == [r"^up\.example\.com:\d+$", r"^.+\.cdn\.net:\d+$"]


def test_a_policy_of_any_host_patterns_only_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("sites:\n  - {name: a, hosts: ['*']}\n")
    with pytest.raises(PolicyError, match="no enabled site names a host"):
        allow_hosts(path)


def test_child_is_stopped_on_exit() -> None:
    with child(SLEEP) as proc:
        assert proc.poll() is None
    assert proc.returncode == -signal.SIGTERM


def test_stop_kills_a_child_that_ignores_sigterm() -> None:
    with child(STUBBORN, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        assert stop(proc, grace_s=0.2) == -signal.SIGKILL
        proc.stdout.close()


def test_waits_fail_fast_when_the_child_exits() -> None:
    with child([sys.executable, "-c", "raise SystemExit(3)"]) as proc:
        with pytest.raises(LaunchError, match="exited with status 3"):
            wait_listening("127.0.0.1", 9, proc, timeout_s=30)
        with pytest.raises(LaunchError, match="exited with status 3"):
            wait_ready("http://127.0.0.1:9", proc, timeout_s=30)


def test_wait_listening_returns_once_a_port_accepts() -> None:
    with socket.socket() as server, child(SLEEP) as proc:
        server.bind(("127.0.0.1", 0))
        server.listen()
        wait_listening("127.0.0.1", server.getsockname()[1], proc, timeout_s=5)


def test_wait_ready_waits_for_readyz_200() -> None:
    answers = iter([503, 503, 200])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(next(answers) if self.path == "/readyz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server, child(SLEEP) as proc:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        wait_ready(f"http://127.0.0.1:{server.server_address[1]}", proc, timeout_s=10)
        server.shutdown()
    assert next(answers, None) is None


def test_wait_ready_asks_with_the_services_token() -> None:
    # `proxy --with-service` under a token: /readyz answered 401 until the launch gave up
    class Guarded(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.headers.get("Authorization") == "Bearer s3cret"
            self.send_response(200 if ok else 401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Guarded) as server, child(SLEEP) as proc:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        wait_ready(url, proc, timeout_s=10, token="s3cret")
        with pytest.raises(LaunchError, match="not ready"):
            wait_ready(url, proc, timeout_s=1)
        server.shutdown()


def test_supervise_forwards_signals_to_every_child() -> None:
    with child(SLEEP) as main, child(SLEEP) as other:
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
        timer.start()
        status = supervise(main, [other])
        other.wait(5)
    assert status == -signal.SIGTERM
    assert main.returncode == other.returncode == -signal.SIGTERM


def test_supervise_returns_the_status_of_a_child_that_ends_alone() -> None:
    with child([sys.executable, "-c", "raise SystemExit(4)"]) as main:
        assert supervise(main, []) == 4


def test_platform_signals_are_those_the_platform_has(monkeypatch: pytest.MonkeyPatch) -> None:
    assert platform_signals("SIGINT", "SIGTERM", "SIGHUP") == (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    monkeypatch.delattr(signal, "SIGHUP")  # as on Windows
    assert platform_signals("SIGINT", "SIGTERM", "SIGHUP") == (signal.SIGINT, signal.SIGTERM)
