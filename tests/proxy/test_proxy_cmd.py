"""`grasp-guard proxy`: what it refuses before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from grasp_guard.cli import ExitStatus, main


@pytest.mark.parametrize(
    ("policy", "flags", "message"),
    [
        ("sites:\n  - {name: a, hosts: ['*']}\n", [], "no enabled site names a host"),
        ("sites:\n  - {name: a, hosts: [x.com], preset: slow}\n", [], "field 'preset'"),
        ("sites:\n  - {name: a, hosts: [x.com]}\n", ["--timeout", "0"], "--timeout"),
        ("sites:\n  - {name: a, hosts: [x.com]}\n", ["--service-config", "s.yaml"],
         "--with-service only"),
    ],
)
def test_refuses_before_starting(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 policy: str, flags: list[str], message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy)
    assert main(["proxy", "--policy", str(path), *flags]) == ExitStatus.ERROR
    assert message in capsys.readouterr().err


def test_service_and_with_service_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["proxy", "--service", "http://a:1", "--with-service"])
    assert info.value.code == ExitStatus.USAGE
    assert "not allowed with" in capsys.readouterr().err


@pytest.mark.parametrize(("device", "timeout_s", "warned"), [
    ("cpu", 60.0, True), ("cuda:0", 60.0, False), ("cpu", 1800.0, False)])
def test_a_service_on_a_cpu_is_said_to_outlast_the_proxys_wait(device: str, timeout_s: float,
                                                               warned: bool) -> None:
    # on a CPU a face takes minutes: at the default 60 s every upload went per on_failure
    import http.server
    import json
    import threading

    from grasp_guard.cli.proxy_cmd import _slow_device_warning

    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # behind a token, as `serve` with one is
            if self.headers.get("Authorization") != "Bearer s3cret":
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps({"status": "ready", "device": device}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        warning = _slow_device_warning(f"http://127.0.0.1:{server.server_address[1]}", timeout_s,
                                       "s3cret")
    finally:
        server.shutdown()
        server.server_close()
    assert (warning is not None) is warned
    if warned:
        assert "--timeout 1800" in warning and "pass: unprotected" in warning
    assert _slow_device_warning("http://127.0.0.1:9", 60.0) is None  # no service: no guess
